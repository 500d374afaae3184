/**
 * Attacks on a real Kiln on loopback (docs/security.md): what a client without a key can make
 * the server do, slow and greedy clients, key guessing, tenants reading each other's images,
 * and requests that would make the server answer or buffer far more than they cost.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { MemoryAuthThrottle } from '../src/events/auth-throttle.ts';
import { RedisAuthThrottle } from '../src/events/redis-auth-throttle.ts';
import { nestsDeeperThan } from '../src/api/json-depth.ts';
import { WsSession } from '../src/api/ws-sessions.ts';
import { createSafeFetch } from '../src/net/safe-fetch.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { redisUrl, REDIS_DB, serviceProblem, uniquePrefix } from './helpers/services.ts';
import { RawWsClient } from './helpers/ws-client.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

const KEY_B = 'kiln_test_key_B_0123456789abcdefghijklm';

const inference = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a lighthouse on a cliff at dusk',
  width: 256,
  height: 256,
  ...extra,
});

/**
 * Sends `size` bytes as the body of `POST /v1` with the given headers, and resolves with the
 * status and how many body bytes had been written when the answer arrived.
 */
function postBig(
  url: string,
  size: number,
  headers: Record<string, string>,
  options: { chunked?: boolean } = {},
): Promise<{ status: number; written: number; ms: number; body: string }> {
  const target = new URL('/v1', url);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(options.chunked ? {} : { 'content-length': String(size) }), ...headers },
    });
    let written = 0;
    let answered = false;
    const chunk = Buffer.alloc(64 * 1024, '[');
    const pump = (): void => {
      while (!answered && written < size) {
        const piece = chunk.subarray(0, Math.min(chunk.length, size - written));
        written += piece.length;
        if (!request.write(piece)) {
          request.once('drain', pump);
          return;
        }
      }
      if (!answered) request.end();
    };
    request.on('response', (response) => {
      answered = true;
      const ms = performance.now() - started;
      const at = written;
      let body = '';
      response.on('data', (data: Buffer) => (body += data.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, written: at, ms, body }));
      response.on('error', () => resolve({ status: response.statusCode ?? 0, written: at, ms, body }));
    });
    // The server closes the connection once it answered; writing on may then fail.
    request.on('error', (error) => {
      if (!answered) reject(error);
    });
    pump();
  });
}

/** Resolves with the ms until the server closes a raw TCP connection (or rejects after `limitMs`). */
function closedWithin(socket: net.Socket, limitMs: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${limitMs} ms`)), limitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
    socket.on('error', () => {});
  });
}

function connect(url: string): Promise<net.Socket> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.hostname, port: Number(target.port) }, () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('before authentication', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      KILN_REQUEST_TIMEOUT_SECONDS: '2',
      KILN_HEADERS_TIMEOUT_SECONDS: '1',
      KILN_WS_AUTH_TIMEOUT_SECONDS: '1',
    });
  });
  after(() => server.close());

  test('a 40 MB body without a key is refused unread, and /health keeps answering', async () => {
    const health = (async () => {
      const started = performance.now();
      const response = await fetch(`${server.url}/health`);
      await response.text();
      return performance.now() - started;
    })();
    const size = 40 * 1024 * 1024;
    const answer = await postBig(server.url, size, {});
    assert.equal(answer.status, 401);
    assert.match(JSON.parse(answer.body).errors[0].message, /at most 65536 bytes/);
    assert.ok(answer.written < size, `the answer came before the body was sent (${answer.written} of ${size})`);
    assert.ok(answer.ms < 1_000, `401 within a second (${Math.round(answer.ms)} ms)`);
    assert.ok((await health) < 1_000, '/health answered meanwhile');
  });

  test('a wrong key is refused before its body is read', async () => {
    const size = 40 * 1024 * 1024;
    const answer = await postBig(server.url, size, { authorization: 'Bearer not-a-key' });
    assert.equal(answer.status, 401);
    assert.equal(JSON.parse(answer.body).errors[0].code, 'invalidApiKey');
    assert.ok(answer.written < size);
  });

  test('a chunked body without a key is cut off past 64 KB', async () => {
    const answer = await postBig(server.url, 4 * 1024 * 1024, {}, { chunked: true });
    assert.equal(answer.status, 401);
    assert.match(JSON.parse(answer.body).errors[0].message, /at most 65536 bytes/);
  });

  test('a small body with an authentication task still works without a header', async () => {
    const answer = await post(server, [{ taskType: 'authentication', apiKey: TEST_KEY }, { taskType: 'ping', ping: true }], { key: null });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.data[0].taskType, 'authentication');
  });

  test('JSON nested deeper than 64 levels is refused before it is parsed', async () => {
    const deep = `${'['.repeat(65)}${']'.repeat(65)}`;
    const answer = await post(server, deep, { raw: true });
    assert.equal(answer.status, 400);
    assert.equal(answer.body.errors[0].code, 'invalidRequestBody');
    assert.match(answer.body.errors[0].message, /nested deeper than 64/);
    // Brackets inside strings do not count.
    assert.equal(nestsDeeperThan(JSON.stringify([{ p: '['.repeat(100) }]), 64), false);
    assert.equal(nestsDeeperThan(`[${'{"a":'.repeat(70)}1${'}'.repeat(70)}]`, 64), true);
  });

  test('a client that trickles its headers is cut off', async () => {
    const socket = await connect(server.url);
    socket.write('POST /v1 HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => socket.writable && socket.write('X'), 200);
    try {
      const ms = await closedWithin(socket, 5_000);
      assert.ok(ms < 4_000, `closed after ${Math.round(ms)} ms`);
    } finally {
      clearInterval(drip);
    }
  });

  test('a client that trickles its body is cut off', async () => {
    const socket = await connect(server.url);
    socket.write(`POST /v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_KEY}\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n[`);
    const drip = setInterval(() => socket.writable && socket.write(' '), 200);
    try {
      const ms = await closedWithin(socket, 6_000);
      assert.ok(ms < 5_000, `closed after ${Math.round(ms)} ms`);
    } finally {
      clearInterval(drip);
    }
  });

  test('an unauthenticated WebSocket may send only small frames', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    client.send(JSON.stringify([{ taskType: 'ping', pad: 'x'.repeat(200 * 1024) }]));
    const closed = await client.closed;
    assert.equal(closed.code, 1009);
  });

  test('after authentication the same frame is read', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    await client.authenticate(TEST_KEY);
    client.send(JSON.stringify([{ taskType: 'ping', ping: true, taskUUID: randomUUID(), pad: 'x'.repeat(200 * 1024) }]));
    const answer = await client.next((f) => f.errors !== undefined || f.data !== undefined);
    assert.ok(answer.errors?.[0]?.code === 'unsupportedParameter' || answer.data?.[0]?.pong === true);
    client.close();
  });

  test('a WebSocket that does not authenticate in time is closed', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    const started = performance.now();
    const closed = await client.closed;
    assert.equal(closed.code, 1008);
    assert.ok(performance.now() - started < 3_000);
  });

  test('every answer carries X-Content-Type-Options: nosniff', async () => {
    for (const url of ['/health', '/nothing', '/image/00000000-0000-4000-8000-000000000000.jpg', '/v1']) {
      const response = await fetch(`${server.url}${url}`);
      await response.text();
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', url);
    }
    const answer = await post(server, [], { key: 'wrong' });
    assert.equal(answer.headers.get('x-content-type-options'), 'nosniff');
  });
});

describe('connection caps and authentication throttling', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_MAX_CONNECTIONS_PER_ADDRESS: '4' });
  });
  after(() => server.close());

  test('one address cannot hold more connections than its cap', async () => {
    const sockets = await Promise.all(Array.from({ length: 4 }, () => connect(server.url)));
    const extra = await connect(server.url);
    const ms = await closedWithin(extra, 2_000);
    assert.ok(ms < 2_000);
    for (const socket of sockets) socket.destroy();
    // Once they are gone, the address may connect again.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const response = await fetch(`${server.url}/health`);
    assert.equal(response.status, 200);
  });

  test('after 20 failed authentications a minute the address gets 429 with Retry-After, valid key or not', async () => {
    for (let i = 0; i < 20; i++) {
      const answer = await post(server, [{ taskType: 'ping', ping: true }], { key: `guess-${i}` });
      assert.equal(answer.status, 401, `attempt ${i}`);
    }
    const throttled = await post(server, [{ taskType: 'ping', ping: true }], { key: 'guess-21' });
    assert.equal(throttled.status, 429);
    assert.equal(throttled.body.errors[0].code, 'tooManyRequests');
    const retryAfter = Number(throttled.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    // The key is not even checked while the address is throttled.
    assert.equal((await post(server, [{ taskType: 'ping', ping: true }])).status, 429);
    // Authentication tasks in a body and over WebSocket count against the same address.
    const viaBody = await post(server, [{ taskType: 'authentication', apiKey: TEST_KEY }], { key: null });
    assert.equal(viaBody.status, 429);
    const client = await RawWsClient.connect(server.wsUrl);
    const frame = await client.authenticate(TEST_KEY);
    assert.equal(frame.errors[0].code, 'tooManyRequests');
    client.close();
  });

  test('several authentication tasks in one body are several guesses', async () => {
    const throttle = new MemoryAuthThrottle({ limit: 3, windowMs: 60_000 });
    for (let i = 0; i < 3; i++) await throttle.fail('10.0.0.1');
    assert.ok((await throttle.blockedFor('10.0.0.1')) > 0);
    assert.equal(await throttle.blockedFor('10.0.0.2'), 0);
  });

  test('the Redis throttle counts across processes', async (t) => {
    if (await serviceProblem('redis')) return t.skip('redis not available');
    const prefix = uniquePrefix('auththrottle');
    const a = new RedisAuthThrottle({ redisUrl: redisUrl(REDIS_DB.misc), prefix, limit: 5, windowMs: 5_000 });
    const b = new RedisAuthThrottle({ redisUrl: redisUrl(REDIS_DB.misc), prefix, limit: 5, windowMs: 5_000 });
    try {
      for (let i = 0; i < 5; i++) await a.fail('192.0.2.7');
      const wait = await b.blockedFor('192.0.2.7');
      assert.ok(wait > 0 && wait <= 5_000, `blocked for ${wait} ms on the other process`);
      assert.equal(await b.blockedFor('192.0.2.8'), 0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('the Redis throttle reads an address at most once per second per process; its own failures count at once', async (t) => {
    if (await serviceProblem('redis')) return t.skip('redis not available');
    const prefix = uniquePrefix('auththrottle');
    let clock = 0;
    const now = (): number => clock;
    const a = new RedisAuthThrottle({ redisUrl: redisUrl(REDIS_DB.misc), prefix, limit: 5, windowMs: 60_000, now });
    const b = new RedisAuthThrottle({ redisUrl: redisUrl(REDIS_DB.misc), prefix, limit: 5, windowMs: 60_000, now });
    try {
      // b has just seen the address unblocked; a's failures reach b once its read is a second old.
      assert.equal(await b.blockedFor('192.0.2.20'), 0);
      for (let i = 0; i < 5; i++) await a.fail('192.0.2.20');
      assert.ok((await a.blockedFor('192.0.2.20')) > 0, 'the process that counted the failures knows at once');
      assert.equal(await b.blockedFor('192.0.2.20'), 0, 'b still uses its read');
      clock += 999;
      assert.equal(await b.blockedFor('192.0.2.20'), 0);
      clock += 1;
      const wait = await b.blockedFor('192.0.2.20');
      assert.ok(wait > 58_000 && wait <= 60_000, `blocked for ${wait} ms`);
      // A failure counted by b itself updates b at once, whatever it read before.
      assert.equal(await b.blockedFor('192.0.2.21'), 0);
      for (let i = 0; i < 4; i++) await a.fail('192.0.2.21');
      await b.fail('192.0.2.21');
      assert.ok((await b.blockedFor('192.0.2.21')) > 0);
      // A read sent just before a failure's INCR does not undo its count, whichever answer is
      // handled first (the throttle keeps the answer to the command sent last).
      for (let i = 0; i < 4; i++) await a.fail('192.0.2.22');
      clock += 1_000;
      await Promise.all([b.blockedFor('192.0.2.22'), b.fail('192.0.2.22')]);
      assert.ok((await b.blockedFor('192.0.2.22')) > 0, 'the fifth failure stands');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('tenants stay apart', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_API_KEYS: `${TEST_KEY},${KEY_B}`, KILN_METRICS_TOKEN: 'metrics-token-0123456789' });
  });
  after(() => server.close());

  test("key B cannot copy key A's image with imageUpload, nor reference it", async () => {
    const made = await post(server, [inference({ outputType: 'base64Data' })]);
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const imageUUID = made.body.data[0].imageUUID as string;
    const copy = await post(server, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: imageUUID }], { key: KEY_B });
    assert.equal(copy.status, 400, JSON.stringify(copy.body));
    assert.equal(copy.body.errors[0].code, 'invalidImage');
    assert.equal(copy.body.errors[0].parameter, 'image');
    assert.equal(JSON.stringify(copy.body).includes('imageURL'), false);
    const reference = await post(server, [inference({ referenceImages: [imageUUID] })], { key: KEY_B });
    assert.equal(reference.status, 400);
    // The owner may.
    const own = await post(server, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: imageUUID }]);
    assert.equal(own.status, 200, JSON.stringify(own.body));
  });

  test("key B cannot read key A's task", async () => {
    const t = inference({ deliveryMethod: 'async' });
    assert.equal((await post(server, [t])).status, 200);
    const read = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }], { key: KEY_B });
    assert.equal(read.status, 404);
  });

  test('the data dir is 0700 and the SQLite file 0600', async () => {
    assert.equal((await stat(server.dataDir)).mode & 0o777, 0o700);
    assert.equal((await stat(path.join(server.dataDir, 'kiln.sqlite'))).mode & 0o777, 0o600);
  });

  test('/metrics needs its token when one is configured', async () => {
    assert.equal((await fetch(`${server.url}/metrics`)).status, 403);
    const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer metrics-token-wrong-0000' } });
    assert.equal(wrong.status, 403);
    const right = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer metrics-token-0123456789' } });
    assert.equal(right.status, 200);
    assert.match(await right.text(), /kiln_/);
  });
});

describe('no amplification', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_MAX_REPLY_MB: '0.05', KILN_WS_MAX_BUFFERED_MB: '1' });
  });
  after(() => server.close());

  test('100 getResponse tasks for the same task are answered once', async () => {
    const t = inference({ outputType: 'base64Data' });
    assert.equal((await post(server, [t])).status, 200);
    const polls = Array.from({ length: 100 }, (_, i) => ({ taskType: 'getResponse', taskUUID: i % 2 ? t.taskUUID : t.taskUUID.toUpperCase() }));
    const answer = await post(server, polls);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.data.length, 1, 'one item: the task has one image');
  });

  test('a reply past the byte cap is refused cleanly, naming URL output', async () => {
    const t = inference({ outputType: 'base64Data', outputFormat: 'PNG', numberResults: 4 });
    const answer = await post(server, [t]);
    const error = answer.body.errors?.find((e: any) => e.code === 'responseTooLarge');
    assert.ok(error, JSON.stringify(answer.body).slice(0, 300));
    assert.equal(error.taskUUID, t.taskUUID);
    assert.match(error.message, /outputType "URL"/);
    assert.ok(JSON.stringify(answer.body).length <= 0.05 * 1024 * 1024 + 4_096);
  });

  test('a getResponse whose only answer is past the byte cap is a 413, as a sync task would be', async () => {
    const t = inference({ outputType: 'base64Data', outputFormat: 'PNG', numberResults: 4, deliveryMethod: 'async' });
    assert.equal((await post(server, [t])).status, 200);
    let answer = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
    for (let i = 0; i < 200 && answer.body.data?.some((item: any) => item.status === 'processing'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      answer = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
    }
    assert.equal(answer.status, 413, JSON.stringify(answer.body).slice(0, 300));
    assert.deepEqual(answer.body.data ?? [], []);
    assert.equal(answer.body.errors[0].code, 'responseTooLarge');
    assert.equal(answer.body.errors[0].taskUUID, t.taskUUID);
  });

  test('a request asking for too many images × megapixels is refused before anything is queued', async () => {
    const tasks = Array.from({ length: 3 }, () => inference({ deliveryMethod: 'async', numberResults: 20, width: 4096, height: 4096 }));
    const answer = await post(server, tasks);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.errors[0].code, 'tooManyImages');
    const read = await post(server, [{ taskType: 'getResponse', taskUUID: tasks[0]!.taskUUID }]);
    assert.equal(read.status, 404, 'nothing was stored');
  });

  test('a series counts its seriesAmount images toward the ceiling, not numberResults', async () => {
    // 23 series of 9 at 4096² are 207 images (~3.5 GP); with numberResults 1 each they would look like 23.
    const series = () => inference({ deliveryMethod: 'async', width: 4096, height: 4096, providerSettings: { klingai: { resultType: 'series', seriesAmount: 9 } } });
    const tasks = Array.from({ length: 23 }, series);
    const answer = await post(server, tasks);
    assert.equal(answer.status, 400, JSON.stringify(answer.body).slice(0, 300));
    assert.equal(answer.body.errors[0].code, 'tooManyImages');
    const read = await post(server, [{ taskType: 'getResponse', taskUUID: tasks[0]!.taskUUID }]);
    assert.equal(read.status, 404, 'nothing was stored');
  });

  test('imageUpload URL fetches count toward the per-request ceiling: 26 in one request are refused unfetched', async () => {
    const upload = (i: number) => ({ taskType: 'imageUpload', taskUUID: randomUUID(), image: `https://kiln-test.invalid/${i}.png` });
    const answer = await post(server, Array.from({ length: 26 }, (_, i) => upload(i)));
    assert.equal(answer.status, 400);
    assert.equal(answer.body.errors.length, 1);
    assert.equal(answer.body.errors[0].code, 'tooManyImages');
    assert.match(answer.body.errors[0].message, /imageUpload from a URL/);
    // Inline uploads fetch nothing and are not counted; one URL upload fits and is tried (and refused for its port).
    const inline = await post(server, Array.from({ length: 26 }, () => ({ taskType: 'imageUpload', taskUUID: randomUUID(), image: 'AAAA' })));
    assert.ok(inline.body.errors.length > 0 && inline.body.errors.every((e: any) => e.code !== 'tooManyImages'), JSON.stringify(inline.body).slice(0, 300));
    const one = await post(server, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: 'https://example.com:25/a.png' }]);
    assert.notEqual(one.body.errors?.[0]?.code, 'tooManyImages');
  });

  test('outbound URLs may use only ports 80 and 443 by default', async () => {
    const answer = await post(server, [inference({ deliveryMethod: 'async', webhookURL: 'https://example.com:25/hook' })]);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.errors[0].code, 'invalidWebhookURL');
    assert.match(answer.body.errors[0].message, /Port 25/);
    const http = createSafeFetch();
    try {
      await assert.rejects(http.request('http://example.com:6379/'), (error: Error & { reason?: string }) => error.reason === 'badUrl');
    } finally {
      await http.close();
    }
  });

  test('a WebSocket client that does not read is cut off, not buffered without bound', async () => {
    const t = inference({ outputType: 'base64Data', outputFormat: 'PNG', width: 512, height: 512 });
    const ok = await post(server, [t]);
    assert.ok(ok.body.data?.length === 1 || ok.body.errors?.[0]?.code === 'responseTooLarge');
    // The server's own count of open WebSocket connections (its /metrics answers loopback).
    const openSockets = async (): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^kiln_websocket_sessions (\d+)/m.exec(text)?.[1] ?? NaN);
    };
    const before = await openSockets();
    const socket = new WebSocket(server.wsUrl, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.send(JSON.stringify([{ taskType: 'authentication', apiKey: TEST_KEY }]));
    await new Promise((resolve) => socket.once('message', resolve));
    assert.equal(await openSockets(), before + 1);
    // Stop reading, then ask for far more than the kernel buffers and the 1 MB cap hold.
    (socket as unknown as { _socket: net.Socket })._socket.pause();
    for (let i = 0; i < 400; i++) socket.send(JSON.stringify([{ taskType: 'getResponse', taskUUID: t.taskUUID }]));
    // The server answers at its own pace (slowly on a loaded machine): wait, still not reading,
    // until it has dropped the connection, rather than for a fixed time it might not have had.
    const deadline = Date.now() + 60_000;
    while ((await openSockets()) > before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(await openSockets(), before, 'the server still holds the connection of a client that has not read for a minute');
    // Reading again: the socket ends once the kernel's copy is read.
    (socket as unknown as { _socket: net.Socket })._socket.resume();
    const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('open'), 10_000))]);
    socket.terminate();
    assert.equal(outcome, 'closed');
  });

  test('a detached session keeps a bounded buffer, dropping the oldest frames and counting them', () => {
    const session = new WsSession('s', { apiKeyId: 'k' }, 100, () => {});
    for (let i = 0; i < 10; i++) session.send(JSON.stringify({ n: i, pad: 'x'.repeat(20) }));
    const kept = (session as unknown as { buffer: { frame: string }[] }).buffer.map((entry) => JSON.parse(entry.frame).n);
    assert.deepEqual(kept, [8, 9]);
    assert.equal(session.takeDropped(), 8);
    assert.equal(session.takeDropped(), 0);
  });
});

describe('error codes', () => {
  test('docs/protocol.md lists every code of the error table with its status', async () => {
    const { ERROR_STATUS } = await import('../src/errors/api-error.ts');
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(path.join(REPO_ROOT, 'docs', 'protocol.md'), 'utf8');
    const listed = new Map([...doc.matchAll(/^\| `([A-Za-z]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]));
    assert.deepEqual(Object.fromEntries(listed), { ...ERROR_STATUS });
  });
});
