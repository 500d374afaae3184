import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const task = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a calm harbour at sunrise with boats and gulls',
  width: 384,
  height: 256,
  ...extra,
});

const safetyLogs = (server: TestServer) => server.logs.filter((line) => line.msg === 'safety check');

describe('safety checks with the real classifier', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test('benign generated images come back NSFWContent false, with probabilities logged', async (t) => {
    const response = await post(server, [task({ safety: { mode: 'fast' }, numberResults: 2 })]);
    assert.equal(response.status, 200);
    for (const item of response.body.data) assert.equal(item.NSFWContent, false);
    const logs = safetyLogs(server).slice(-2);
    assert.equal(logs.length, 2);
    for (const line of logs) {
      const probabilities = line.probabilities as Record<string, number>;
      assert.deepEqual(Object.keys(probabilities).sort(), ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy']);
      assert.ok(Math.abs(Object.values(probabilities).reduce((a, b) => a + b, 0) - 1) < 0.01);
      assert.ok((line.score as number) < 0.5);
      t.diagnostic(`probabilities ${JSON.stringify(probabilities)}`);
    }
  });

  test('checkContent and the legacy checkNSFW flag turn the check on too', async () => {
    for (const extra of [{ safety: { checkContent: true } }, { checkNSFW: true }]) {
      const response = await post(server, [task(extra)]);
      assert.equal(response.body.data[0].NSFWContent, false);
    }
  });

  test('mode none adds no field and runs no check', async () => {
    const before = safetyLogs(server).length;
    for (const extra of [{}, { safety: { mode: 'none' } }, { safety: { checkContent: true, mode: 'none' } }, { checkNSFW: false }]) {
      const response = await post(server, [task(extra)]);
      assert.equal('NSFWContent' in response.body.data[0], false, JSON.stringify(extra));
    }
    assert.equal(safetyLogs(server).length, before);
  });

  test('checks are counted and timed in /metrics', async () => {
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const clean = /kiln_safety_checks_total\{verdict="clean"\} (\d+)/.exec(metrics);
    assert.ok(clean && Number(clean[1]) >= 4, metrics.slice(0, 200));
    assert.match(metrics, /kiln_safety_check_seconds_count \d+/);
  });
});

describe('safety policies with a threshold that flags everything', () => {
  test('flag: images are delivered with NSFWContent true over REST and WebSocket', async () => {
    const server = await startTestServer({ KILN_SAFETY_THRESHOLD: '0', KILN_SAFETY_POLICY: 'flag' });
    try {
      const rest = await post(server, [task({ safety: { mode: 'fast' } })]);
      assert.equal(rest.status, 200);
      assert.equal(rest.body.data[0].NSFWContent, true);
      assert.equal((await fetch(rest.body.data[0].imageURL)).status, 200);
      const client = await RawWsClient.connect(server.wsUrl);
      await client.authenticate(TEST_KEY);
      const t = task({ safety: { checkContent: true } });
      client.send([t]);
      const frame = await client.next(client.forTask(t.taskUUID));
      assert.equal(frame.data[0].NSFWContent, true);
      client.close();
    } finally {
      await server.close();
    }
  });

  test('block: each image becomes an nsfwContentDetected error and is not stored', async () => {
    const server = await startTestServer({ KILN_SAFETY_THRESHOLD: '0', KILN_SAFETY_POLICY: 'block' });
    try {
      const t = task({ safety: { mode: 'fast' }, numberResults: 2 });
      const rest = await post(server, [t]);
      assert.equal(rest.status, 400);
      assert.deepEqual(rest.body.data, []);
      assert.equal(rest.body.errors.length, 2);
      for (const error of rest.body.errors) {
        assert.equal(error.code, 'nsfwContentDetected');
        assert.equal(error.taskUUID, t.taskUUID);
      }
      const poll = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
      assert.equal(poll.body.data.length, 0);
      assert.ok(poll.body.errors.every((e: any) => e.code === 'nsfwContentDetected' && e.status === 'error'));
      const client = await RawWsClient.connect(server.wsUrl);
      await client.authenticate(TEST_KEY);
      const ws = task({ checkNSFW: true });
      client.send([ws]);
      const frame = await client.next(client.forTask(ws.taskUUID));
      assert.equal(frame.errors[0].code, 'nsfwContentDetected');
      client.close();
      const stored = (await readdir(path.join(server.dataDir, 'objects'), { recursive: true })).filter((f) => f.includes('.'));
      assert.deepEqual(stored, [], 'blocked images were not stored');
      // Without a check the same server delivers normally.
      const plain = await post(server, [task()]);
      assert.equal(plain.status, 200);
    } finally {
      await server.close();
    }
  });
});
