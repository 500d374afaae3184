/**
 * The `ObjectStore` conformance suite: one list of assertions, run against every adapter (local
 * files in a temp directory; S3 on a real s3rver on loopback), then the S3 adapter's own failure
 * paths (nothing listening, a server that never answers, a missing bucket).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { LocalObjectStore, type ObjectStore } from '../../src/store/object-store.ts';
import { S3ObjectStore, type S3ObjectStoreOptions } from '../../src/store/s3-object-store.ts';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';

const SIX_MB = 6 * 1024 * 1024;
const UNSAFE_KEYS = ['../x', '.hidden', 'a/b', ''] as const;

/** A key no other test uses, so the assertions can share one store. */
function freshKey(extension = 'png'): string {
  return `${randomUUID()}.${extension}`;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

interface Adapter {
  /** A store ready for use and how to remove everything it made. */
  start(): Promise<{ store: ObjectStore; stop(): Promise<void> }>;
}

function conformance(name: string, adapter: Adapter): void {
  describe(`ObjectStore conformance: ${name}`, () => {
    let store: ObjectStore;
    let stop: () => Promise<void>;

    before(async () => {
      ({ store, stop } = await adapter.start());
    });
    after(async () => {
      await store.close();
      await stop();
    });

    it('gets back the bytes that were put', async () => {
      const key = freshKey();
      const bytes = randomBytes(4096);
      await store.put(key, bytes);
      assert.deepEqual(await store.get(key), bytes);
    });

    it('takes a Uint8Array view into a larger buffer and stores only the view', async () => {
      const key = freshKey('bin');
      const backing = randomBytes(1000);
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 100, 300);
      await store.put(key, view);
      assert.deepEqual(await store.get(key), Buffer.from(view));
    });

    it('replaces an object on a second put', async () => {
      const key = freshKey('jpg');
      await store.put(key, randomBytes(5000));
      const second = randomBytes(70);
      await store.put(key, second);
      assert.deepEqual(await store.get(key), second);
    });

    it('answers undefined to get and open of a missing key', async () => {
      const key = freshKey();
      assert.equal(await store.get(key), undefined);
      assert.equal(await store.open(key), undefined);
    });

    for (const size of [1, 100_000, SIX_MB]) {
      it(`opens a stream of exactly the bytes and states their length (${size} bytes)`, async () => {
        const key = freshKey('webp');
        const bytes = randomBytes(size);
        await store.put(key, bytes);
        const opened = await store.open(key);
        assert.ok(opened);
        assert.equal(opened.bytes, size);
        const read = await readAll(opened.stream);
        assert.equal(read.length, size);
        assert.ok(read.equals(bytes), 'streamed bytes differ from what was put');
      });
    }

    it('forgets an object once deleted', async () => {
      const key = freshKey();
      await store.put(key, randomBytes(10));
      await store.delete(key);
      assert.equal(await store.get(key), undefined);
      assert.equal(await store.open(key), undefined);
    });

    it('resolves when deleting a key that does not exist', async () => {
      await store.delete(freshKey());
    });

    for (const key of UNSAFE_KEYS) {
      it(`rejects the unsafe key ${JSON.stringify(key)} in every method`, async () => {
        await assert.rejects(store.put(key, Buffer.from('x')), /unsafe object key/);
        await assert.rejects(store.get(key), /unsafe object key/);
        await assert.rejects(store.open(key), /unsafe object key/);
        await assert.rejects(store.delete(key), /unsafe object key/);
      });
    }

    it('keeps 20 concurrent puts of distinct keys apart', async () => {
      const objects = Array.from({ length: 20 }, () => ({ key: freshKey(), bytes: randomBytes(20_000) }));
      await Promise.all(objects.map(({ key, bytes }) => store.put(key, bytes)));
      const read = await Promise.all(objects.map(({ key }) => store.get(key)));
      read.forEach((bytes, index) => assert.deepEqual(bytes, objects[index]?.bytes, `object ${index}`));
    });

    it('keeps working after a reader destroys its stream half-way', async () => {
      const key = freshKey();
      const bytes = randomBytes(SIX_MB);
      await store.put(key, bytes);
      const opened = await store.open(key);
      assert.ok(opened);
      let seen = 0;
      for await (const chunk of opened.stream) {
        seen += (chunk as Buffer).length;
        if (seen >= SIX_MB / 2) break; // leaving for-await destroys the stream
      }
      // An HTTP body is torn down through its socket, so it reports 'close' a moment later.
      const stream = opened.stream;
      if (!stream.closed) await new Promise((resolve) => stream.once('close', resolve));
      assert.ok(stream.destroyed);
      assert.ok(seen < SIX_MB, 'the stream should have been cut off before its end');

      const again = await store.open(key);
      assert.ok(again);
      assert.ok((await readAll(again.stream)).equals(bytes));
      const other = freshKey();
      await store.put(other, Buffer.from('after'));
      assert.deepEqual(await store.get(other), Buffer.from('after'));
      await store.delete(key);
      assert.equal(await store.get(key), undefined);
    });
  });
}

/** Sets the AWS credential variables for the SDK's default chain and gives back a restorer. */
function useAwsEnv(env: Readonly<Record<string, string>>): () => void {
  const names = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const;
  const saved = names.map((name) => [name, process.env[name]] as const);
  for (const name of names) process.env[name] = env[name];
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

conformance('LocalObjectStore', {
  async start() {
    const root = await mkdtemp(path.join(tmpdir(), 'kiln-objects-'));
    return { store: new LocalObjectStore(root), stop: () => rm(root, { recursive: true, force: true }) };
  },
});

conformance('S3ObjectStore', {
  async start() {
    const s3 = await startS3Server();
    const restoreEnv = useAwsEnv(s3.env);
    const store = new S3ObjectStore({ bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, prefix: 'conf/' });
    return {
      store,
      async stop() {
        restoreEnv();
        await s3.close();
      },
    };
  },
});

describe('S3ObjectStore against a real server', () => {
  let s3: S3Server;
  let restoreEnv: () => void;
  const stores: S3ObjectStore[] = [];
  const open = (options: Partial<S3ObjectStoreOptions> = {}): S3ObjectStore => {
    const store = new S3ObjectStore({ bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, ...options });
    stores.push(store);
    return store;
  };

  before(async () => {
    s3 = await startS3Server();
    restoreEnv = useAwsEnv(s3.env);
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    restoreEnv();
    await s3.close();
  });

  it('check() resolves for an existing bucket', async () => {
    await open().check();
  });

  it('check() names a missing bucket', async () => {
    await assert.rejects(open({ bucket: 'no-such-bucket' }).check(), (error: Error) => {
      assert.match(error.message, /"no-such-bucket"/);
      assert.match(error.message, /does not exist/);
      assert.ok(error.message.includes(s3.endpoint), error.message);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  });

  it('stores the bytes as sent (no chunk framing) under the prefix', async () => {
    const key = freshKey();
    const bytes = randomBytes(70_000);
    await open({ prefix: 'p/' }).put(key, bytes);
    assert.deepEqual(await s3.getObject(`p/${key}`), bytes);
    assert.equal(await s3.getObject(key), undefined);
  });

  it('reads what a plain HTTP PUT to a presigned URL stored', async () => {
    const key = freshKey();
    const bytes = randomBytes(3000);
    const response = await fetch(await s3.presignedPutUrl(key), { method: 'PUT', body: bytes });
    assert.equal(response.status, 200, await response.text());
    assert.deepEqual(await open().get(key), bytes);
  });

  it('sends large objects at once on a kept-alive connection (no Expect: 100-continue round trip, no new connection per object)', async () => {
    // A loopback relay in front of s3rver notes each request's headers and the connection it came on.
    const seen: { expect: string | undefined; connection: number; method: string }[] = [];
    const target = new URL(s3.endpoint);
    const relay = http.createServer((request, response) => {
      seen.push({ expect: request.headers.expect, connection: request.socket.remotePort ?? -1, method: request.method ?? '' });
      const forward = http.request({ host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers }, (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      });
      forward.on('error', () => response.destroy());
      request.pipe(forward);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const store = open({ endpoint: `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}` });
      // Past the SDK's 2 MB threshold for the header, where it would also open a fresh connection.
      const objects = [randomBytes(3 * 1024 * 1024), randomBytes(3 * 1024 * 1024)];
      const keys = objects.map(() => freshKey('jpg'));
      for (const [i, bytes] of objects.entries()) await store.put(keys[i]!, bytes);
      for (const [i, bytes] of objects.entries()) assert.deepEqual(await s3.getObject(keys[i]!), bytes);
      const puts = seen.filter((request) => request.method === 'PUT');
      assert.equal(puts.length, 2);
      assert.deepEqual(puts.map((request) => request.expect), [undefined, undefined]);
      assert.equal(puts[0]!.connection, puts[1]!.connection, 'the second PUT reuses the first one’s connection');
    } finally {
      relay.closeAllConnections();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it('rejects calls after close()', async () => {
    const store = open();
    await store.close();
    await assert.rejects(store.get(freshKey()), /closed/);
  });
});

describe('S3ObjectStore failure paths', () => {
  const HANG_BOUND_MS = 10_000;
  let closedPort: number;
  let silent: net.Server;
  let silentPort: number;
  const silentSockets = new Set<net.Socket>();
  const stores: S3ObjectStore[] = [];
  let restoreEnv: () => void;

  before(async () => {
    // Credentials for the default chain, so it never falls through to the instance metadata service.
    restoreEnv = useAwsEnv({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    // Accepts connections and never answers: the hang the timeouts exist for.
    silent = net.createServer((socket) => {
      silentSockets.add(socket);
      socket.on('close', () => silentSockets.delete(socket));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as net.AddressInfo).port;
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    for (const socket of silentSockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    restoreEnv();
  });

  async function rejectsSoon(name: string, call: () => Promise<unknown>, pattern: RegExp): Promise<void> {
    const started = Date.now();
    await assert.rejects(call(), (error: unknown) => {
      assert.ok(error instanceof Error, `${name}: rejected with a non-Error`);
      assert.match(error.message, pattern, `${name}: ${error.message}`);
      return true;
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < HANG_BOUND_MS, `${name} took ${elapsed} ms`);
  }

  it('rejects every call within seconds when nothing listens at the endpoint', async () => {
    const endpoint = `http://127.0.0.1:${closedPort}`;
    const store = new S3ObjectStore({ bucket: 'kiln-test', endpoint, forcePathStyle: true });
    stores.push(store);
    const named = new RegExp(`"kiln-test".*${endpoint.replace(/[.]/g, '\\.')}`);
    await rejectsSoon('put', () => store.put(freshKey(), Buffer.from('x')), named);
    await rejectsSoon('get', () => store.get(freshKey()), named);
    await rejectsSoon('open', () => store.open(freshKey()), named);
    await rejectsSoon('delete', () => store.delete(freshKey()), named);
    await rejectsSoon('check', () => store.check(), /S3 bucket "kiln-test" at http:\/\/127\.0\.0\.1:\d+ is not usable: ECONNREFUSED/);
  });

  it('gives up on a server that accepts connections but never answers', async () => {
    const store = new S3ObjectStore({
      bucket: 'kiln-test',
      endpoint: `http://127.0.0.1:${silentPort}`,
      forcePathStyle: true,
      operationTimeoutMs: 1_500,
      idleTimeoutMs: 1_000,
    });
    stores.push(store);
    await rejectsSoon('get', () => store.get(freshKey()), /failed .*"kiln-test"/);
    await rejectsSoon('check', () => store.check(), /"kiln-test" .* is not usable/);
  });
});
