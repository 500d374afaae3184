/**
 * The limits of docs/security.md hold across processes: 2 `kiln api` + 1 `kiln worker` on
 * Redis, PostgreSQL and S3. A key revoked with `kiln keys` against PostgreSQL is refused by
 * every API process, and failed authentications on one API process throttle the address on
 * the other (the counter lives in Redis).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { runKeysCommand } from '../src/cli/keys-command.ts';
import { startCluster, type Cluster } from './helpers/cluster.ts';
import { post, TEST_KEY } from './helpers/kiln-server.ts';
import { serviceProblem } from './helpers/services.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const skip = (await serviceProblem('redis')) ?? (await serviceProblem('postgres'));
const ping = [{ taskType: 'ping', ping: true }];

/** A ping over REST from a chosen loopback address. */
function pingFrom(url: string, localAddress: string, key: string): Promise<{ status: number; retryAfter: string | undefined }> {
  const target = new URL('/v1', url);
  const body = JSON.stringify(ping);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: '/v1',
        method: 'POST',
        localAddress,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'] }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await check()) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`not within ${timeoutMs} ms`);
}

describe('security limits across a cluster', { skip, timeout: 240_000 }, () => {
  let cluster: Cluster;
  const keys = async (...args: string[]): Promise<string> => {
    let out = '';
    const code = await runKeysCommand(args, { env: cluster.env, out: (text) => (out += text), err: () => {} });
    assert.equal(code, 0);
    return out;
  };
  before(async () => {
    cluster = await startCluster({
      apis: 2,
      workers: 1,
      env: { KILN_KEY_HASH_SECRET: 'cluster-key-hash-secret-0123456789abcdef', KILN_AUTH_FAILURES_PER_MINUTE: '5' },
    });
  });
  after(() => cluster?.close());

  test('a big body without a key is refused unread by every API process', async () => {
    for (const api of cluster.apis) {
      const started = performance.now();
      const status = await new Promise<number>((resolve, reject) => {
        const target = new URL('/v1', api.url);
        const request = http.request({ host: target.hostname, port: target.port, path: '/v1', method: 'POST', headers: { 'content-length': String(30 * 1024 * 1024) } });
        request.on('response', (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        request.on('error', reject);
        request.write(Buffer.alloc(256 * 1024, '['));
      });
      assert.equal(status, 401);
      assert.ok(performance.now() - started < 1_000);
    }
  });

  test('a key made with kiln keys against PostgreSQL works everywhere, and its revocation reaches every process', async () => {
    const issued = JSON.parse(await keys('create', '--label', 'cluster', '--json'));
    for (const api of cluster.apis) assert.equal((await post(api, ping, { key: issued.key })).status, 200);
    const client = await RawWsClient.connect(`${cluster.apis[1]!.url.replace(/^http/, 'ws')}/v1`);
    assert.equal((await client.authenticate(issued.key)).data[0].taskType, 'authentication');
    await keys('revoke', issued.id);
    for (const api of cluster.apis) {
      const ms = await until(async () => (await post(api, ping, { key: issued.key })).status === 401, 8_000);
      assert.ok(ms < 6_500);
    }
    const closed = await Promise.race([client.closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000))]);
    assert.equal(closed?.code, 1008);
    assert.equal((await post(cluster.apis[0]!, ping)).status, 200, 'the configured key still works');
  });

  test('failed authentications on one API process throttle the address on the other', async () => {
    // From 127.0.0.2, an address no other test used (the 401s above counted for 127.0.0.1).
    const [first, second] = cluster.apis as [(typeof cluster.apis)[0], (typeof cluster.apis)[0]];
    for (let i = 0; i < 5; i++) assert.equal((await pingFrom(first.url, '127.0.0.2', `guess-${i}`)).status, 401);
    const throttled = await pingFrom(second.url, '127.0.0.2', TEST_KEY);
    assert.equal(throttled.status, 429);
    assert.ok(Number(throttled.retryAfter) >= 1);
    assert.equal((await pingFrom(second.url, '127.0.0.3', TEST_KEY)).status, 200, 'other addresses are not throttled');
  });
});
