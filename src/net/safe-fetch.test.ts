import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  chunkedBody,
  redirectTo,
  serveBytes,
  slowDrip,
  startLoopbackServer,
  type LoopbackServer,
} from '../../test/fixtures/loopback-server.ts';
import { checkAddress } from './address-guard.ts';
import { FetchError, type FetchFailureReason } from './fetch-error.ts';
import { createSafeFetch, type SafeFetch } from './safe-fetch.ts';

function failsWith(reason: FetchFailureReason, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof FetchError, `expected FetchError, got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

describe('checkAddress', () => {
  const refused = [
    '127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
    '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fc00::1', 'fd00:ec2::254', 'ff02::1',
    '::ffff:127.0.0.1', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe', '::7f00:1', '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::', '192.0.2.1', 'not-an-ip',
  ];
  for (const address of refused) {
    it(`refuses ${address}`, () => assert.equal(checkAddress(address, false).allowed, false));
  }
  for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
    it(`allows ${address}`, () => assert.equal(checkAddress(address, false).allowed, true));
  }
  it('allows private and loopback with allowPrivate, never multicast or unspecified', () => {
    assert.equal(checkAddress('127.0.0.1', true).allowed, true);
    assert.equal(checkAddress('[::1]', true).allowed, true);
    assert.equal(checkAddress('10.0.0.1', true).allowed, true);
    assert.equal(checkAddress('0.0.0.0', true).allowed, false);
    assert.equal(checkAddress('224.0.0.1', true).allowed, false);
  });
});

describe('safe fetch over loopback', () => {
  let server: LoopbackServer;
  let client: SafeFetch;
  let strict: SafeFetch;
  const png = Buffer.from('\x89PNG\r\n\x1a\nfake', 'latin1');

  before(async () => {
    server = await startLoopbackServer({
      '/image.png': serveBytes(png, 'image/png'),
      '/r1': redirectTo('/image.png'),
      '/r2': redirectTo('/r1', 301),
      '/r3': redirectTo('/r2', 307),
      '/r4': redirectTo('/r3', 308),
      '/to-file': redirectTo('file:///etc/passwd'),
      '/echo': async (request, response) => {
        const chunks: Buffer[] = [];
        for await (const chunk of request) chunks.push(chunk as Buffer);
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ method: request.method, body: Buffer.concat(chunks).toString(), type: request.headers['content-type'] }));
      },
      '/to-echo': redirectTo('/echo', 307),
      '/drip': slowDrip(50),
      '/big-chunked': chunkedBody(3 * 1024 * 1024),
      '/big-declared': serveBytes(Buffer.alloc(2 * 1024 * 1024), 'image/png'),
      '/hang': () => {
        /* never answers */
      },
    });
    client = createSafeFetch({ allowPrivate: true, connectTimeoutMs: 1_000, totalTimeoutMs: 2_000, maxBytes: 1024 * 1024 });
    strict = createSafeFetch({ connectTimeoutMs: 1_000, totalTimeoutMs: 2_000 });
  });
  after(async () => {
    await Promise.all([client.close(), strict.close()]);
    await server.close();
  });

  it('gets a body with status and headers', async () => {
    const response = await client.request(server.url('/image.png'));
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'image/png');
    assert.deepEqual(Buffer.from(response.body), png);
    assert.equal(response.redirects, 0);
  });

  it('refuses loopback without allowPrivate, by literal and by name', async () => {
    await assert.rejects(strict.request(server.url('/image.png')), failsWith('blockedAddress', /127\.0\.0\.1 is a loopback address/));
    await assert.rejects(strict.request(`http://localhost:${server.port}/image.png`), failsWith('blockedAddress', /localhost resolves to/));
    // The TLS connector resolves through the same guarded lookup.
    await assert.rejects(strict.request(`https://localhost:${server.port}/`), failsWith('blockedAddress', /localhost resolves to/));
    await assert.rejects(strict.request(`http://[::ffff:127.0.0.1]:${server.port}/`), failsWith('blockedAddress'));
    await assert.rejects(strict.request('http://169.254.169.254/latest/meta-data/'), failsWith('blockedAddress', /linkLocal/));
    assert.equal(server.hits('/image.png'), 1);
  });

  it('follows 3 redirects and refuses a 4th', async () => {
    const response = await client.request(server.url('/r3'));
    assert.equal(response.redirects, 3);
    assert.equal(response.url, server.url('/image.png'));
    await assert.rejects(client.request(server.url('/r4')), failsWith('tooManyRedirects', /More than 3 redirects/));
  });

  it('re-checks the target of each redirect', async () => {
    await assert.rejects(client.request(server.url('/to-file')), failsWith('badUrl', /Only http and https/));
  });

  it('sends POST and PUT bodies, and again after a 307', async () => {
    const response = await client.request(server.url('/to-echo'), {
      method: 'PUT',
      body: 'hello',
      headers: { 'Content-Type': 'text/plain' },
    });
    assert.deepEqual(JSON.parse(Buffer.from(response.body).toString()), { method: 'PUT', body: 'hello', type: 'text/plain' });
  });

  it('reports a 404 with its status', async () => {
    await assert.rejects(client.request(server.url('/missing')), (error: unknown) => {
      assert.ok(error instanceof FetchError && error.reason === 'httpStatus' && error.status === 404);
      return true;
    });
  });

  it('stops a slow-drip body at the total timeout', async () => {
    const started = performance.now();
    await assert.rejects(client.request(server.url('/drip'), { totalTimeoutMs: 300 }), failsWith('timeout', /300 ms/));
    assert.ok(performance.now() - started < 1_500);
  });

  it('stops a server that never answers at the total timeout', async () => {
    await assert.rejects(client.request(server.url('/hang'), { totalTimeoutMs: 200 }), failsWith('timeout'));
  });

  it('caps the body while streaming and by content-length', async () => {
    await assert.rejects(client.request(server.url('/big-chunked')), failsWith('tooLarge'));
    await assert.rejects(client.request(server.url('/big-declared')), failsWith('tooLarge'));
    // The connection pool is still usable afterwards.
    assert.equal((await client.request(server.url('/image.png'))).status, 200);
  });

  it('lets the caller cancel', async () => {
    const controller = new AbortController();
    const pending = client.request(server.url('/hang'), { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(pending, failsWith('aborted'));
  });

  it('refuses non-http URLs and credentials', async () => {
    await assert.rejects(client.request('ftp://example.com/a.png'), failsWith('badUrl'));
    await assert.rejects(client.request('not a url'), failsWith('badUrl'));
    await assert.rejects(client.request(`http://user:pw@127.0.0.1:${server.port}/`), failsWith('badUrl', /credentials/));
  });

  it('fails fast on a host that does not resolve', async () => {
    const started = performance.now();
    await assert.rejects(strict.request('https://assets.kiln-test.invalid/image.jpg'), (error: unknown) => {
      assert.ok(error instanceof FetchError && (error.reason === 'dns' || error.reason === 'timeout'), String(error));
      return true;
    });
    assert.ok(performance.now() - started < 1_500);
  });

  it('applies the connect timeout to a TLS handshake that never completes', async () => {
    // A TCP listener that accepts and then says nothing: the https connect cannot finish.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const started = performance.now();
    try {
      await assert.rejects(
        client.request(`https://127.0.0.1:${port}/`, { connectTimeoutMs: 200, totalTimeoutMs: 5_000 }),
        failsWith('timeout', /connect/),
      );
      assert.ok(performance.now() - started < 2_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
