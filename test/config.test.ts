import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import sharp from 'sharp';
import { ConfigError, loadConfig } from '../src/config/config.ts';
import { post, startTestServer, TEST_KEY } from './helpers/kiln-server.ts';

test('defaults match docs/configuration.md', () => {
  const config = loadConfig({});
  assert.equal(config.port, 8080);
  assert.equal(config.host, '0.0.0.0');
  assert.match(config.dataDir, /data$/);
  assert.equal(config.maxBodyBytes, 64 * 1024 * 1024);
  assert.equal(config.wsIdleMs, 120_000);
  assert.equal(config.retentionMs, 24 * 3_600_000);
  assert.equal(config.runware, undefined);
  assert.deepEqual(config.routes, {});
  assert.equal(config.imageThreads, 1);
  assert.equal(config.databasePrepared, true);
  assert.equal(loadConfig({ KILN_DATABASE_PREPARED: 'false' }).databasePrepared, false);
});

test('KILN_IMAGE_THREADS sets the threads sharp gives each image operation, from the start of the process', async () => {
  assert.equal(loadConfig({ KILN_IMAGE_THREADS: '3' }).imageThreads, 3);
  for (const bad of ['0', '-1', '1.5', 'two']) assert.throws(() => loadConfig({ KILN_IMAGE_THREADS: bad }), ConfigError, bad);
  const before = sharp.concurrency();
  try {
    sharp.concurrency(4);
    const server = await startTestServer({ KILN_IMAGE_THREADS: '2' });
    try {
      assert.equal(sharp.concurrency(), 2);
    } finally {
      await server.close();
    }
    const defaults = await startTestServer();
    try {
      assert.equal(sharp.concurrency(), 1);
    } finally {
      await defaults.close();
    }
  } finally {
    sharp.concurrency(before);
  }
});

test('every bad variable is listed at once', () => {
  assert.throws(
    () => loadConfig({ KILN_PORT: 'eighty', KILN_SAFETY_THRESHOLD: '2', KILN_RUNWARE_URL: 'ftp://x', KILN_ROUTES: 'nonsense', KILN_RUNWARE_OUTPUT_TYPE: 'png' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 5, error.message);
      return true;
    },
  );
});

test('KILN_API_KEYS refuses keys shorter than 32 characters, in one line that does not repeat the key', async () => {
  const short = 'kiln_short_key_0123456789'; // 25 characters
  assert.throws(
    () => loadConfig({ KILN_API_KEYS: `${TEST_KEY}, ${short}` }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 1, error.message);
      assert.match(error.problems[0]!, /^KILN_API_KEYS: .*at least 32 characters/);
      assert.ok(!error.message.includes(short), 'the message must not carry the key');
      return true;
    },
  );
  assert.equal(TEST_KEY.length >= 32, true);
  assert.deepEqual(loadConfig({ KILN_API_KEYS: ` ${TEST_KEY} ,` }).apiKeys, [TEST_KEY]);
  assert.deepEqual(loadConfig({ KILN_API_KEYS: 'k'.repeat(32) }).apiKeys, ['k'.repeat(32)]);
  await assert.rejects(startTestServer({ KILN_API_KEYS: short }), ConfigError);
});

test('KILN_ROUTES pins O3 to studio although a Runware key is set; unknown routes stop the start', async () => {
  const server = await startTestServer({ RUNWARE_API_KEY: 'operator-key', KILN_RUNWARE_URL: 'ws://127.0.0.1:9/v1', KILN_ROUTES: 'klingai:kling-image@o3=studio' });
  try {
    const response = await post(server, [
      { taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: 'dunes', width: 1024, height: 1024 },
    ]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-kiln-engine'), 'studio');
  } finally {
    await server.close();
  }
  await assert.rejects(startTestServer({ KILN_ROUTES: 'klingai:kling-image@o3=runware' }), ConfigError);
  await assert.rejects(startTestServer({ KILN_ROUTES: 'kiln:studio@1=runware', RUNWARE_API_KEY: TEST_KEY }), ConfigError);
});

test('KILN_RUNWARE_OUTPUT_TYPE chooses how the runware engine gets its images (base64 by default, or URLs)', () => {
  assert.equal(loadConfig({ RUNWARE_API_KEY: 'operator-key' }).runware?.upstreamOutputType, 'base64Data');
  assert.equal(loadConfig({ RUNWARE_API_KEY: 'operator-key', KILN_RUNWARE_OUTPUT_TYPE: 'URL' }).runware?.upstreamOutputType, 'URL');
});
