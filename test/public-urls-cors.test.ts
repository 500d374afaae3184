import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { RawWsClient } from './helpers/ws-client.ts';

/** POST /v1 with headers fetch will not send as given (Host), over a plain socket to the server. */
function rawPost(server: TestServer, body: unknown, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> {
  const url = new URL(`${server.url}/v1`);
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: '/v1',
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_KEY}`, 'content-length': Buffer.byteLength(text), ...headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(Buffer.concat(chunks).toString()) }));
      },
    );
    request.on('error', reject);
    request.end(text);
  });
}

const task = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a red barn in a wheat field',
  width: 128,
  height: 128,
  ...extra,
});

describe('image URLs without KILN_PUBLIC_URL follow the address the client used', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test('the Host of the request is the base of its image URLs, and the URL downloads from there', async () => {
    const reply = await post(server, [task()]);
    const url = new URL(reply.body.data[0].imageURL);
    assert.equal(url.origin, server.url, 'a client of 127.0.0.1:<port> gets 127.0.0.1:<port>, not localhost');
    assert.equal((await fetch(url)).status, 200);

    const elsewhere = await rawPost(server, [task()], { host: '192.0.2.10:9999' });
    assert.match(elsewhere.body.data[0].imageURL, /^http:\/\/192\.0\.2\.10:9999\/image\/[0-9a-f-]{36}\.jpg$/);
  });

  test('getResponse answers in the caller’s own base; a malformed Host falls back to the server’s', async () => {
    const t = task({ deliveryMethod: 'async' });
    await rawPost(server, [t], { host: 'kiln-a.example:8080' });
    let items: any[] = [];
    for (let i = 0; i < 100 && items[0]?.status !== 'success'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      items = (await rawPost(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }], { host: 'kiln-b.example' })).body.data;
    }
    assert.match(items[0].imageURL, /^http:\/\/kiln-b\.example\/image\//);
    const odd = await rawPost(server, [task()], { host: 'bad host/<x>' });
    assert.match(odd.body.data[0].imageURL, /^http:\/\/localhost:\d+\/image\//);
  });

  test('X-Forwarded-* are ignored unless the proxy is trusted', async () => {
    const reply = await rawPost(server, [task()], { host: '127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'images.example.com' });
    assert.match(reply.body.data[0].imageURL, /^http:\/\/127\.0\.0\.1\/image\//);
  });

  test('over WebSocket too', async () => {
    const ws = await RawWsClient.connect(server.wsUrl);
    try {
      await ws.authenticate(TEST_KEY);
      const t = task();
      ws.send([t]);
      const frame = await ws.next(ws.forTask(t.taskUUID));
      assert.equal(new URL(frame.data[0].imageURL).origin, server.url);
    } finally {
      ws.close();
    }
  });
});

describe('KILN_TRUST_PROXY and KILN_PUBLIC_URL', () => {
  test('a trusted proxy sets scheme and host; KILN_PUBLIC_URL wins over both', async () => {
    const proxied = await startTestServer({ KILN_TRUST_PROXY: 'true' });
    const fixed = await startTestServer({ KILN_PUBLIC_URL: 'https://cdn.example.net/kiln' });
    try {
      const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'images.example.com' };
      const reply = await rawPost(proxied, [task()], headers);
      assert.match(reply.body.data[0].imageURL, /^https:\/\/images\.example\.com\/image\//);
      const pinned = await rawPost(fixed, [task()], headers);
      assert.match(pinned.body.data[0].imageURL, /^https:\/\/cdn\.example\.net\/kiln\/image\//);
    } finally {
      await proxied.close();
      await fixed.close();
    }
  });
});

describe('CORS (KILN_CORS_ORIGINS)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_CORS_ORIGINS: 'https://app.example, https://studio.example' });
  });
  after(() => server.close());

  const preflight = (url: string, origin: string) =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });

  test('preflights on /v1 and /image/… are answered for listed origins only', async () => {
    const ok = await preflight(`${server.url}/v1`, 'https://app.example');
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /authorization/i);
    assert.match(ok.headers.get('access-control-allow-methods') ?? '', /POST/);
    const image = await preflight(`${server.url}/image/00000000-0000-4000-8000-000000000000.jpg`, 'https://studio.example');
    assert.equal(image.headers.get('access-control-allow-origin'), 'https://studio.example');
    const other = await preflight(`${server.url}/v1`, 'https://evil.example');
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  test('answers carry the origin and expose X-Kiln-Engine', async () => {
    const response = await fetch(`${server.url}/v1`, {
      method: 'POST',
      headers: { origin: 'https://app.example', authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ taskType: 'ping', ping: true }]),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(response.headers.get('access-control-expose-headers') ?? '', /X-Kiln-Engine/);
  });

  test('off by default', async () => {
    const plain = await startTestServer();
    try {
      const response = await preflight(`${plain.url}/v1`, 'https://app.example');
      assert.equal(response.headers.get('access-control-allow-origin'), null);
    } finally {
      await plain.close();
    }
  });
});
