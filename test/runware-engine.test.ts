/**
 * The `runware` engine against a real upstream: a second Kiln, as a child process on loopback,
 * running the studio engine and speaking the Runware protocol over WebSocket and REST.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { upstreamDownloader } from '../src/compose.ts';
import { ApiError } from '../src/errors/index.ts';
import { parseState } from '../src/engines/runware/call-state.ts';
import { createRunwareEngine, type RunwareEngineOptions } from '../src/engines/runware/runware-engine.ts';
import { makeCall, MemoryCheckpoints, recordingLogger } from '../src/engines/runware/test-support.ts';
import type { GeneratedImage, ImageEngine } from '../src/engines/spec/image-engine.ts';
import { createSafeFetch } from '../src/net/safe-fetch.ts';
import { deferred } from '../src/shared/deferred.ts';
import { ChildServer } from './helpers/child-server.ts';
import { post, startTestServer, TEST_KEY } from './helpers/kiln-server.ts';

const wsOf = (server: { url: string }): string => `${server.url.replace(/^http/, 'ws')}/v1`;
const restOf = (server: { url: string }): string => `${server.url}/v1`;

/** Fast retries so the failure tests stay short; generous attempts so a restart is outlived. */
const QUICK = { pollIntervalMs: 100, maxPollIntervalMs: 300, retryBaseMs: 100, retryMaxMs: 500, requestTimeoutMs: 10_000 } as const;

/** Tasks the upstream Kiln has stored (read from its SQLite file, as a second reader). */
function upstreamTasks(dataDir: string): { task_uuid: string; status: string }[] {
  const db = new Database(path.join(dataDir, 'kiln.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT task_uuid, status FROM tasks').all() as { task_uuid: string; status: string }[];
  } finally {
    db.close();
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Rejects if `promise` has not settled within `ms`: a call must complete or fail, never hang. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms))),
  ]);
}

async function assertImage(image: GeneratedImage, format: 'jpeg' | 'png' | 'webp', width: number, height: number): Promise<void> {
  assert.ok(image.encoded, 'an encoded image');
  const meta = await sharp(image.encoded.bytes).metadata();
  assert.equal(meta.format, format);
  assert.equal(meta.width, width);
  assert.equal(meta.height, height);
}

describe('runware engine (upstream: a second Kiln process)', () => {
  let upstream: ChildServer;
  let upstreamDir: string;
  const engines: ImageEngine[] = [];
  const engine = (url: string, extra: Partial<RunwareEngineOptions> = {}, logger = recordingLogger()) => {
    const made = createRunwareEngine({ apiKey: TEST_KEY, url, logger, ...QUICK, ...extra });
    engines.push(made);
    return made;
  };

  before(async () => {
    upstreamDir = await mkdtemp(path.join(tmpdir(), 'kiln-upstream-'));
    // RUNWARE_API_KEY emptied: the upstream must run the studio engine even if the caller's environment has a key.
    upstream = await ChildServer.start(upstreamDir, { KILN_STUDIO_THREADS: '1', KILN_QUEUE_CONCURRENCY: '2', RUNWARE_API_KEY: '' });
  });
  after(async () => {
    for (const made of engines) await made.close();
    await upstream.kill('SIGTERM');
    await rm(upstreamDir, { recursive: true, force: true });
  });

  for (const transport of ['websocket', 'rest'] as const) {
    test(`a 2-image task end to end over ${transport}: images stream, decode to the requested format and size, costs reported`, async () => {
      const subject = engine(transport === 'websocket' ? wsOf(upstream) : restOf(upstream));
      const format = transport === 'websocket' ? 'jpg' : 'webp';
      const call = makeCall({ count: 2, firstSeed: 500, width: 1360, height: 768, output: { format, quality: 90 } });
      const result = await subject.generate(call);
      assert.equal(result.images.length, 2);
      assert.deepEqual(call.streamed.map((i) => i.index).sort(), [0, 1], 'each image streamed once');
      assert.deepEqual(result.images.map((i) => i.seed).sort(), [500, 501], 'the upstream used the seeds of the slots');
      for (const image of result.images) {
        assert.equal(image.cost, 0.028);
        assert.equal(image.encoded?.format, format);
        await assertImage(image, format === 'jpg' ? 'jpeg' : 'webp', 1360, 768);
      }
      const saved = parseState(await call.checkpoint.load());
      assert.ok(saved && upstreamTasks(upstreamDir).some((t) => t.task_uuid === saved.upstream && t.status === 'done'));
    });
  }

  test('upstream image URLs are downloaded through the guarded client: allowed with private URLs allowed, refused by default', async () => {
    // The upstream is a Kiln on loopback: its image URLs are private, so only a client that
    // allows private URLs (KILN_ALLOW_PRIVATE_URLS=true in compose) may download them.
    const permissive = createSafeFetch({ allowPrivate: true });
    const guarded = createSafeFetch();
    try {
      const make = (download: ReturnType<typeof upstreamDownloader>) => {
        const made = createRunwareEngine({ apiKey: TEST_KEY, url: restOf(upstream), logger: recordingLogger(), ...QUICK, upstreamOutputType: 'URL', download });
        engines.push(made);
        return made;
      };
      const call = makeCall({ count: 1, firstSeed: 42, width: 1024, height: 1024, output: { format: 'png', quality: 95 } });
      const result = await make(upstreamDownloader(permissive)).generate(call);
      assert.equal(result.images.length, 1);
      await assertImage(result.images[0]!, 'png', 1024, 1024);

      await assert.rejects(make(upstreamDownloader(guarded)).generate(makeCall({ count: 1, firstSeed: 43 })), (error: unknown) => {
        assert.ok(error instanceof ApiError, String(error));
        assert.equal(error.code, 'providerError');
        assert.match(error.message, /could not be downloaded/);
        assert.equal(error.retryable, false, 'a blocked address is not retried');
        return true;
      });
    } finally {
      await permissive.close();
      await guarded.close();
    }
  });

  test('upstream validation errors pass through with code, message and parameter; run-task ties them to the Kiln task', async () => {
    const subject = engine(wsOf(upstream));
    const sizeError = await subject.generate(makeCall({ width: 2560, height: 1440 })).then(
      () => assert.fail('2560×1440 is not an O3 size'),
      (error: unknown) => error,
    );
    assert.ok(sizeError instanceof ApiError);
    assert.equal(sizeError.code, 'unsupportedDimensions');
    assert.deepEqual(sizeError.details.parameter, ['width', 'height']);
    assert.match(sizeError.message, /dimensions/);
    const kilnTask = randomUUID();
    const wire = sizeError.forTask(kilnTask, 'imageInference').toJSON();
    assert.equal(wire.taskUUID, kilnTask, 'the upstream taskUUID never reaches the user');

    const restSubject = engine(restOf(upstream));
    await assert.rejects(restSubject.generate(makeCall({ prompt: 'x'.repeat(2501) })), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, 'invalidPositivePrompt');
      assert.equal(error.details.parameter, 'positivePrompt');
      return true;
    });
  });

  for (const transport of ['websocket', 'rest'] as const) {
    test(`a bad upstream key over ${transport} is a provider failure for the user and an error line for the operator`, async () => {
      const logger = recordingLogger();
      const subject = engine(transport === 'websocket' ? wsOf(upstream) : restOf(upstream), { apiKey: 'not-the-key' }, logger);
      await assert.rejects(subject.generate(makeCall()), (error: unknown) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.code, 'providerError');
        assert.equal(error.status, 502);
        assert.doesNotMatch(JSON.stringify(error.toJSON()), /apiKey|invalidApiKey/);
        return true;
      });
      const line = logger.lines.find((l) => l.level === 'error');
      assert.ok(line, 'an error log line');
      assert.match(line.msg, /RUNWARE_API_KEY/);
      assert.equal(line.fields.upstreamCode, 'invalidApiKey');
    });
  }

  test('Kiln restarted mid-task: a fresh engine with the same checkpoint resumes by polling, never resubmits', async () => {
    const checkpoints = new MemoryCheckpoints();
    const first = engine(restOf(upstream));
    const controller = new AbortController();
    const slots = [0, 1, 2].map((index) => ({ index, seed: 90 + index }));
    const delivered: GeneratedImage[] = [];
    const before = upstreamTasks(upstreamDir).length;
    const call = makeCall({
      images: slots,
      width: 4096,
      height: 4096,
      output: { format: 'jpg', quality: 80 },
      checkpoint: checkpoints.for('task/0'),
      signal: controller.signal,
      onImage: (image) => {
        delivered.push(image);
        controller.abort(); // "crash" as soon as the first image is stored
      },
    });
    await assert.rejects(first.generate(call), { name: 'AbortError' });
    await first.close();
    assert.equal(delivered.length, 1);
    const saved = parseState(checkpoints.values.get('task/0'));
    assert.ok(saved);

    // As run-task would after a restart: only the slots still pending, same checkpoint.
    const second = engine(restOf(upstream));
    const pending = slots.filter((slot) => slot.index !== delivered[0]!.index);
    const resumed = makeCall({ images: pending, width: 4096, height: 4096, output: { format: 'jpg', quality: 80 }, checkpoint: checkpoints.for('task/0') });
    const result = await within(second.generate(resumed), 30_000, 'the resumed call');
    assert.deepEqual(result.images.map((i) => i.index).sort(), pending.map((s) => s.index));
    for (const image of result.images) await assertImage(image, 'jpeg', 4096, 4096);
    assert.equal(upstreamTasks(upstreamDir).length, before + 1, 'one upstream task in all');
    assert.ok(checkpoints.saves.every((s) => parseState(s.value)?.upstream === saved.upstream), 'the checkpoint kept its upstream taskUUID');
  });

  test('an unreachable upstream fails with timeoutProvider after bounded retries, over both transports', async () => {
    const port = await freePort();
    for (const url of [`ws://127.0.0.1:${port}/v1`, `http://127.0.0.1:${port}/v1`]) {
      const subject = engine(url, { maxAttempts: 3, retryBaseMs: 20, retryMaxMs: 50 });
      await assert.rejects(within(subject.generate(makeCall()), 10_000, url), (error: unknown) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.code, 'timeoutProvider');
        assert.equal(error.status, 504);
        return true;
      });
    }
  });

  // Enabled by itself once compose routes O3 to the runware engine when RUNWARE_API_KEY is set.
  test('an aborted call (a cancel, a deadline) stops polling at once and reports what the upstream had already made', async () => {
    const logger = recordingLogger();
    const subject = engine(wsOf(upstream), {}, logger);
    const controller = new AbortController();
    let streamed = 0;
    // 1K JPGs: every poll answer repeats the finished images in base64, and 4K PNGs made each one
    // hundreds of megabytes, which kept a loaded machine's test process busy for minutes.
    const call = makeCall({
      count: 12,
      width: 1024,
      height: 1024,
      output: { format: 'jpg', quality: 90 },
      signal: controller.signal,
      onImage: () => {
        // Stop once the first image has been bought.
        if (++streamed === 1) controller.abort();
      },
    });
    const aborted = Date.now();
    await assert.rejects(within(subject.generate(call), 10_000, 'the aborted call'), (error: Error) => error.name === 'AbortError' || /abort/i.test(error.message));
    assert.ok(Date.now() - aborted < 10_000);
    const line = logger.lines.find((l) => l.msg === 'runware: call stopped; images already made upstream');
    assert.ok(line, 'the stop is reported');
    assert.equal(line.fields.of, 12);
    assert.ok((line.fields.bought as number) >= 1);
    assert.ok((line.fields.bought as number) < 12, 'stopped before the upstream had made every image');
    assert.equal(Math.round((line.fields.upstreamCost as number) * 1e6), 28_000 * (line.fields.bought as number));
  });

  test('end to end through a Kiln configured with RUNWARE_API_KEY and KILN_RUNWARE_URL', async () => {
    const server = await startTestServer({ RUNWARE_API_KEY: TEST_KEY, KILN_RUNWARE_URL: wsOf(upstream) });
    try {
      const taskUUID = randomUUID();
      const response = await post(server, [
        { taskType: 'imageInference', taskUUID, model: 'klingai:kling-image@o3', positivePrompt: 'a red kite over dunes', width: 1024,
          height: 1024, numberResults: 2, outputType: 'base64Data', outputFormat: 'JPG', includeCost: true },
      ]);
      assert.equal(response.headers.get('x-kiln-engine'), 'runware');
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const items = response.body.data as Record<string, any>[];
      assert.equal(items.length, 2);
      for (const item of items) {
        assert.equal(item.taskUUID, taskUUID);
        assert.equal(item.cost, 0.028);
        const meta = await sharp(Buffer.from(item.imageBase64Data, 'base64')).metadata();
        assert.equal(meta.format, 'jpeg');
        assert.equal(meta.width, 1024);
      }
      const bad = await post(server, [
        { taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: 'y'.repeat(2501) },
      ]);
      assert.equal(bad.body.errors[0].code, 'invalidPositivePrompt', 'Kiln validates before the upstream is asked');
    } finally {
      await server.close();
    }
  });

  test('KILN_RUNWARE_OUTPUT_TYPE=URL: the upstream answers URLs, which Kiln downloads once each', async () => {
    const server = await startTestServer({
      RUNWARE_API_KEY: TEST_KEY,
      KILN_RUNWARE_URL: wsOf(upstream),
      KILN_RUNWARE_OUTPUT_TYPE: 'URL',
      // The upstream here is on loopback; the hosted service's image host is public.
      KILN_ALLOW_PRIVATE_URLS: 'true',
    });
    try {
      const taskUUID = randomUUID();
      const response = await post(server, [
        { taskType: 'imageInference', taskUUID, model: 'klingai:kling-image@o3', positivePrompt: 'a paper boat on a pond', width: 1024,
          height: 1024, numberResults: 2, outputType: 'base64Data', outputFormat: 'PNG' },
      ]);
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const items = response.body.data as Record<string, any>[];
      assert.equal(items.length, 2);
      for (const item of items) {
        const meta = await sharp(Buffer.from(item.imageBase64Data, 'base64')).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ['png', 1024, 1024]);
      }
      // What the upstream was asked for.
      const db = new Database(path.join(upstreamDir, 'kiln.sqlite'), { readonly: true, fileMustExist: true });
      try {
        const requests = (db.prepare('SELECT request FROM tasks').all() as { request: string }[]).map((row) => JSON.parse(row.request));
        const asked = requests.find((request) => request.positivePrompt === 'a paper boat on a pond');
        assert.equal(asked?.outputType, 'URL');
      } finally {
        db.close();
      }
    } finally {
      await server.close();
    }
  });
});

describe('runware engine: the upstream process dies mid-task', () => {
  test('SIGKILL and restart on the same port and data dir: the call completes, the upstream task is not resubmitted', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-upstream-kill-'));
    const env = { KILN_PORT: String(await freePort()), KILN_STUDIO_THREADS: '1', KILN_QUEUE_CONCURRENCY: '1', RUNWARE_API_KEY: '' };
    let upstream = await ChildServer.start(dataDir, env);
    const logger = recordingLogger();
    const subject = createRunwareEngine({ apiKey: TEST_KEY, url: wsOf(upstream), logger, ...QUICK, maxAttempts: 60 });
    try {
      const firstImage = deferred();
      const checkpoints = new MemoryCheckpoints();
      const call = makeCall({
        count: 4,
        width: 4096,
        height: 4096,
        output: { format: 'jpg', quality: 80 },
        checkpoint: checkpoints.for('task/0'),
      });
      const streamed = call.streamed;
      const onImage = call.onImage!;
      const running = subject.generate({ ...call, onImage: (image) => (firstImage.resolve(), onImage(image)) });
      await firstImage.promise;
      assert.equal((await upstream.kill('SIGKILL')).signal, 'SIGKILL');
      const upstreamTaskUUID = parseState(checkpoints.values.get('task/0'))?.upstream;
      assert.ok(upstreamTaskUUID);
      assert.ok(streamed.length < 4, `finished before the kill: ${streamed.length}`);
      upstream = await ChildServer.start(dataDir, env);

      const result = await within(running, 45_000, 'the call across an upstream restart');
      const all = new Map([...streamed, ...result.images].map((image) => [image.index, image]));
      assert.deepEqual([...all.keys()].sort(), [0, 1, 2, 3]);
      assert.equal(new Set(streamed.map((i) => i.index)).size, streamed.length, 'no slot streamed twice');
      for (const image of all.values()) await assertImage(image, 'jpeg', 4096, 4096);
      const tasks = upstreamTasks(dataDir);
      assert.deepEqual(tasks.map((t) => t.task_uuid), [upstreamTaskUUID], 'exactly one upstream task, never resubmitted');
      assert.ok(checkpoints.saves.every((s) => parseState(s.value)?.upstream === upstreamTaskUUID));
      assert.ok(logger.lines.some((l) => /dropped|retrying/.test(l.msg)), 'the drop was noticed and retried');
    } finally {
      await subject.close();
      await upstream.kill('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('runware engine: the Kiln in front is killed mid-task', () => {
  test('after SIGKILL and restart the task finishes by polling the same upstream task, not a second one', async () => {
    const upstreamDir = await mkdtemp(path.join(tmpdir(), 'kiln-upstream-'));
    const frontDir = await mkdtemp(path.join(tmpdir(), 'kiln-front-'));
    // The front Kiln connects lazily, so it can start first and tell whether O3 is routed to runware.
    const upstreamEnv = { KILN_PORT: String(await freePort()), KILN_STUDIO_THREADS: '1', KILN_QUEUE_CONCURRENCY: '1', RUNWARE_API_KEY: '' };
    const frontEnv = { RUNWARE_API_KEY: TEST_KEY, KILN_RUNWARE_URL: `ws://127.0.0.1:${upstreamEnv.KILN_PORT}/v1`, KILN_QUEUE_CONCURRENCY: '1' };
    let front = await ChildServer.start(frontDir, frontEnv);
    let upstream: ChildServer | undefined;
    try {
      const probe = await post(front, [{ taskType: 'getResponse', taskUUID: randomUUID() }]);
      assert.equal(probe.headers.get('x-kiln-engine'), 'runware');
      upstream = await ChildServer.start(upstreamDir, upstreamEnv);
      const taskUUID = randomUUID();
      const ack = await post(front, [
        { taskType: 'imageInference', taskUUID, model: 'klingai:kling-image@o3', positivePrompt: 'a harbour in fog', width: 4096,
          height: 4096, numberResults: 4, outputType: 'URL', outputFormat: 'JPG', deliveryMethod: 'async' },
      ]);
      assert.equal(ack.status, 200, JSON.stringify(ack.body));
      const successes = async (): Promise<number> => {
        const response = await post(front, [{ taskType: 'getResponse', taskUUID }]);
        return ((response.body.data ?? []) as { status?: string }[]).filter((item) => item.status === 'success').length;
      };
      const deadline = Date.now() + 30_000;
      while ((await successes()) < 1) {
        assert.ok(Date.now() < deadline, 'no image before the kill');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await front.kill('SIGKILL');
      front = await ChildServer.start(frontDir, frontEnv);
      while ((await successes()) < 4) {
        assert.ok(Date.now() < deadline + 30_000, 'the task did not finish after the restart');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(upstreamTasks(upstreamDir).length, 1, 'the restarted Kiln polled the upstream task instead of paying for another');
      // Each image charged once with the upstream's own figure, whether the run before the kill or
      // the resumed one (which charges what was stored but not charged) wrote its ledger row.
      let rows: { taskUUID: string; cost: number; upstreamCost?: number }[] = [];
      while (rows.length < 4) {
        assert.ok(Date.now() < deadline + 40_000, `the ledger has ${rows.length} of the task's 4 images`);
        const usage = await fetch(`${front.url}/v1/usage`, { headers: { authorization: `Bearer ${TEST_KEY}` } });
        rows = ((await usage.json()) as { rows: typeof rows }).rows.filter((row) => row.taskUUID === taskUUID);
        if (rows.length < 4) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(rows.length, 4);
      for (const row of rows) assert.equal(row.upstreamCost, row.cost, JSON.stringify(row));
    } finally {
      await front.kill('SIGTERM');
      await upstream?.kill('SIGTERM');
      await rm(upstreamDir, { recursive: true, force: true });
      await rm(frontDir, { recursive: true, force: true });
    }
  });
});
