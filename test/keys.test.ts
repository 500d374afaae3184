/**
 * The key lifecycle against a real server on loopback: keys made, revoked and rotated with
 * `kiln keys` (the store is the authority), KILN_API_KEYS reconciled at start, HMAC key hashes
 * (old SHA-256 rows still accepted and upgraded), and webhooks signed with each key's own secret.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { runKeysCommand } from '../src/cli/keys-command.ts';
import { openTaskStore } from '../src/store/open-task-store.ts';
import { kilnNodeArgs } from './helpers/compiled-kiln.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';
import { RawWsClient } from './helpers/ws-client.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

const run = promisify(execFile);

/** Runs `kiln keys …` in-process against a data dir, as an operator would from a shell. */
async function keys(dataDir: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runKeysCommand(args, {
    env: { KILN_DATA_DIR: dataDir },
    out: (text) => (out += text),
    err: (text) => (err += text),
  });
  return { code, out, err };
}

const ping = [{ taskType: 'ping', ping: true }];

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await check()) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`not within ${timeoutMs} ms`);
}

describe('key lifecycle', () => {
  let dataDir: string;
  let server: TestServer;
  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-keys-'));
    server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' }, { dataDir });
  });
  after(async () => {
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('kiln keys create makes a working key and shows it once; list shows only its hint', async () => {
    const created = await keys(dataDir, 'create', '--label', 'ops', '--json');
    assert.equal(created.code, 0, created.err);
    const issued = JSON.parse(created.out);
    assert.deepEqual(Object.keys(issued).sort(), ['id', 'key', 'label', 'webhookSecret']);
    assert.match(issued.key, /^kiln_[A-Za-z0-9_-]{43}$/);
    assert.match(issued.webhookSecret, /^whsec_/);
    assert.equal(issued.label, 'ops');
    assert.equal((await post(server, ping, { key: issued.key })).status, 200);
    const listed = await keys(dataDir, 'list', '--json');
    assert.equal(listed.out.includes(issued.key), false, 'the key is never shown again');
    assert.equal(listed.out.includes(issued.webhookSecret), false);
    const row = JSON.parse(listed.out).find((r: any) => r.id === issued.id);
    assert.equal(row.label, 'ops');
    assert.equal(row.revokedAt, null);
    const readable = await keys(dataDir, 'create', '--label', 'human');
    assert.match(readable.out, /shown only once/i);
  });

  test('the key-hash secret is a 0600 file and the store keeps HMAC hashes, not bare SHA-256', async () => {
    assert.equal((await stat(path.join(dataDir, 'key-hash-secret'))).mode & 0o777, 0o600);
    const issued = JSON.parse((await keys(dataDir, 'create', '--json')).out);
    const store = await openTaskStore({ sqliteFile: path.join(dataDir, 'kiln.sqlite') });
    try {
      const record = await store.findApiKeyById(issued.id);
      assert.equal(record?.hashKind, 'hmac');
      assert.notEqual(record?.hash, createHash('sha256').update(issued.key).digest('hex'));
    } finally {
      await store.close();
    }
  });

  test('a revoked key is refused within seconds, loses its WebSocket, and stays refused after a restart', async () => {
    const issued = JSON.parse((await keys(dataDir, 'create', '--label', 'leaving', '--json')).out);
    assert.equal((await post(server, ping, { key: issued.key })).status, 200);
    const client = await RawWsClient.connect(server.wsUrl);
    const auth = await client.authenticate(issued.key);
    assert.equal(auth.data[0].taskType, 'authentication');

    const revoked = await keys(dataDir, 'revoke', issued.id);
    assert.equal(revoked.code, 0, revoked.err);
    const ms = await until(async () => (await post(server, ping, { key: issued.key })).status === 401, 8_000);
    assert.ok(ms < 6_500, `refused after ${Math.round(ms)} ms`);
    const closed = await Promise.race([client.closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000))]);
    assert.equal(closed?.code, 1008);
    assert.match(closed?.reason ?? '', /revoked/);

    await server.close({ keepData: true });
    server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' }, { dataDir });
    assert.equal((await post(server, ping, { key: issued.key })).status, 401);
    assert.equal((await post(server, ping)).status, 200, 'other keys still work');
  });

  test('rotate gives a new key under the same id; the old one stops working', async () => {
    const issued = JSON.parse((await keys(dataDir, 'create', '--json')).out);
    const rotated = await keys(dataDir, 'rotate', issued.id, '--json');
    assert.equal(rotated.code, 0, rotated.err);
    const fresh = JSON.parse(rotated.out);
    assert.equal(fresh.id, issued.id);
    assert.notEqual(fresh.key, issued.key);
    await until(async () => (await post(server, ping, { key: issued.key })).status === 401, 8_000);
    assert.equal((await post(server, ping, { key: fresh.key })).status, 200);
  });

  test('webhooks are signed with the key’s own secret and verify with standardwebhooks', async () => {
    const receiver = await Receiver.start(() => 200);
    try {
      const a = JSON.parse((await keys(dataDir, 'create', '--json')).out);
      const b = JSON.parse((await keys(dataDir, 'create', '--json')).out);
      const task = {
        taskType: 'imageInference',
        taskUUID: randomUUID(),
        model: 'kiln:studio@1',
        positivePrompt: 'a red barn in snow',
        width: 256,
        height: 256,
        webhookURL: `${receiver.url}/hook`,
      };
      assert.equal((await post(server, [task], { key: a.key })).status, 200);
      await receiver.waitFor(1);
      const request = receiver.requests[0]!;
      const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, String(v)]));
      const body = request.body.toString('utf8');
      assert.ok(new Webhook(a.webhookSecret).verify(body, headers));
      assert.throws(() => new Webhook(b.webhookSecret).verify(body, headers), 'another tenant’s secret does not verify it');
    } finally {
      await receiver.close();
    }
  });

  test('rotate-webhook-secret: for the overlap, webhooks carry both signatures, so old and new secrets verify', async () => {
    const receiver = await Receiver.start(() => 200);
    try {
      const created = JSON.parse((await keys(dataDir, 'create', '--json')).out);
      const rotated = JSON.parse((await keys(dataDir, 'rotate-webhook-secret', created.id, '--json')).out);
      assert.notEqual(rotated.webhookSecret, created.webhookSecret);
      const task = {
        taskType: 'imageInference',
        taskUUID: randomUUID(),
        model: 'kiln:studio@1',
        positivePrompt: 'a blue door in a white wall',
        width: 256,
        height: 256,
        webhookURL: `${receiver.url}/rotated`,
      };
      assert.equal((await post(server, [task], { key: created.key })).status, 200);
      await receiver.waitFor(1);
      const request = receiver.requests[0]!;
      const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, String(v)]));
      const body = request.body.toString('utf8');
      assert.equal(headers['webhook-signature']!.split(' ').length, 2);
      assert.ok(new Webhook(rotated.webhookSecret).verify(body, headers), 'the new secret verifies');
      assert.ok(new Webhook(created.webhookSecret).verify(body, headers), 'the previous secret still verifies during the overlap');
    } finally {
      await receiver.close();
    }
  });

  test('`kiln keys` is dispatched by main.ts', async () => {
    const { stdout } = await run(process.execPath, [...kilnNodeArgs(), 'keys', 'list', '--json'], {
      env: { ...process.env, KILN_DATA_DIR: dataDir },
      cwd: REPO_ROOT,
    });
    assert.ok(Array.isArray(JSON.parse(stdout)));
  });
});

describe('KILN_API_KEYS is a bootstrap list reconciled at start', () => {
  test('a key removed from KILN_API_KEYS is revoked at the next start; CLI keys stay', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-keys-'));
    const other = 'kiln_test_key_other_0123456789abcdefghij';
    let server = await startTestServer({ KILN_API_KEYS: `${TEST_KEY},${other}` }, { dataDir });
    try {
      assert.equal((await post(server, ping, { key: other })).status, 200);
      const cli = JSON.parse((await keys(dataDir, 'create', '--json')).out);
      await server.close({ keepData: true });
      server = await startTestServer({ KILN_API_KEYS: TEST_KEY }, { dataDir });
      assert.equal((await post(server, ping, { key: other })).status, 401);
      assert.equal((await post(server, ping)).status, 200);
      assert.equal((await post(server, ping, { key: cli.key })).status, 200);
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('keys stored as bare SHA-256 by an older version still work and are re-hashed', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-keys-'));
    const old = 'kiln_old_version_key_0123456789';
    const store = await openTaskStore({ sqliteFile: path.join(dataDir, 'kiln.sqlite') });
    const id = randomUUID();
    await store.insertApiKey({ id, hash: createHash('sha256').update(old).digest('hex'), label: 'old', webhookSecret: null, createdAt: Date.now() });
    await store.close();
    const server = await startTestServer({}, { dataDir });
    try {
      assert.equal((await post(server, ping, { key: old })).status, 200);
      const reopened = await openTaskStore({ sqliteFile: path.join(dataDir, 'kiln.sqlite') });
      try {
        assert.equal((await reopened.findApiKeyById(id))?.hashKind, 'hmac');
      } finally {
        await reopened.close();
      }
      assert.ok((await readFile(path.join(dataDir, 'key-hash-secret'), 'utf8')).trim().length >= 32);
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
