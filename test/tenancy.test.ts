/**
 * Fair sharing and money per API key (docs/tenancy.md) against a real server on loopback (one
 * process, SQLite, the in-process queue): fair queueing between two keys, the rate and image
 * limits with Retry-After over REST and WebSocket, budgets that never overspend under 20 racing
 * submissions, refunds for failed images, the usage ledger's exact totals, dryRun, and the
 * 402/429 as the AI SDK and @runware/sdk-js see them.
 *
 * The O3 model is routed to a gated test engine: it records the order in which tasks start,
 * holds them until the test opens the gate, and fails the slots a prompt asks it to.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createRunware } from '@runware/ai-sdk-provider';
import { RunwareServer } from '@runware/sdk-js';
import { APICallError, generateImage } from 'ai';
import sharp from 'sharp';
import Database from 'better-sqlite3';
import pg from 'pg';
import { runKeysCommand } from '../src/cli/keys-command.ts';
import { runUsageCommand } from '../src/cli/usage-command.ts';
import { startKiln, type Kiln } from '../src/compose.ts';
import { loadConfig } from '../src/config/config.ts';
import { openTaskStore } from '../src/store/open-task-store.ts';
import type { TaskStore } from '../src/store/task-store.ts';
import type { EncodedImage, GenerateCall, GenerateResult, GeneratedImage, ImageEngine } from '../src/engines/spec/image-engine.ts';
import { ApiError } from '../src/errors/index.ts';
import { freshPostgresDatabase, serviceProblem } from './helpers/services.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const O3 = 'klingai:kling-image@o3';
const TEST_KEY = 'kiln_tenancy_key_0123456789abcdefghijklmn';

/** Holds every call while closed; records the prompt of each call in start order; fails slots of prompts containing `fail`. */
class GateEngine implements ImageEngine {
  readonly name = 'gate';
  readonly maxImagesPerCall = 1;
  readonly concurrency = 1;
  readonly starts: string[] = [];
  /** `prompt#index` of each image, in the order the calls started. */
  readonly slots: string[] = [];
  private gate: { promise: Promise<void>; open: () => void } | undefined;
  private allowance = 0;
  private readonly images = new Map<string, EncodedImage>();

  close(): Promise<void> {
    this.open();
    return Promise.resolve();
  }

  shut(): void {
    if (this.gate) return;
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    this.gate = { promise, open };
  }

  open(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  /** Lets `count` calls through while the gate stays shut. */
  let(count: number): void {
    this.allowance += count;
    const gate = this.gate;
    this.gate = undefined;
    this.shut();
    gate?.open();
  }

  async generate(call: GenerateCall): Promise<GenerateResult> {
    this.starts.push(call.prompt);
    for (const slot of call.images) this.slots.push(`${call.prompt}#${slot.index}`);
    while (this.gate) {
      if (this.allowance > 0) {
        this.allowance--;
        break;
      }
      await this.gate.promise;
    }
    const size = `${call.width}x${call.height}`;
    if (!this.images.has(size)) {
      const bytes = await sharp({ create: { width: call.width, height: call.height, channels: 3, background: { r: 30, g: 90, b: 160 } } }).jpeg().toBuffer();
      this.images.set(size, { bytes, format: 'jpg', width: call.width, height: call.height });
    }
    const image = this.images.get(size)!;
    const images: GeneratedImage[] = [];
    for (const slot of call.images) {
      if (call.prompt.includes('fail')) throw new ApiError('providerError', 'the test engine failed this image on purpose');
      const generated: GeneratedImage = { index: slot.index, seed: slot.seed, encoded: image };
      images.push(generated);
      await call.onImage?.(generated);
    }
    return { images, warnings: [] };
  }
}

interface Server {
  readonly kiln: Kiln;
  readonly url: string;
  readonly dataDir: string;
  readonly engine: GateEngine;
  keys(...args: string[]): Promise<{ code: number; out: string; err: string }>;
  close(): Promise<void>;
}

async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-tenancy-'));
  const engine = new GateEngine();
  const config = loadConfig({
    KILN_PORT: '0',
    KILN_HOST: '127.0.0.1',
    KILN_DATA_DIR: dataDir,
    KILN_API_KEYS: TEST_KEY,
    KILN_LOG_LEVEL: 'warn',
    KILN_WARMUP: 'false',
    KILN_QUEUE_CONCURRENCY: '1',
    ...env,
  });
  const logStream = new Writable({ write: (_chunk, _encoding, done) => done() });
  const kiln = await startKiln(config, { logStream, engines: new Map([[O3, engine]]) });
  const cliEnv = { KILN_DATA_DIR: dataDir };
  return {
    kiln,
    url: kiln.url,
    dataDir,
    engine,
    async keys(...args) {
      let out = '';
      let err = '';
      const code = await runKeysCommand(args, { env: cliEnv, out: (t) => (out += t), err: (t) => (err += t) });
      return { code, out, err };
    },
    async close() {
      engine.open();
      await kiln.close(2_000);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function newKey(server: Server, ...limits: string[]): Promise<{ id: string; key: string }> {
  const created = await server.keys('create', ...limits, '--json');
  assert.equal(created.code, 0, created.err);
  return JSON.parse(created.out) as { id: string; key: string };
}

function inference(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    taskType: 'imageInference',
    taskUUID: randomUUID(),
    model: O3,
    positivePrompt: 'a lighthouse at dusk',
    width: 1024,
    height: 1024,
    numberResults: 1,
    includeCost: true,
    ...fields,
  };
}

async function post(server: Server, key: string, tasks: unknown[], query = ''): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${server.url}/v1${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(tasks),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

async function usage(server: Server, key: string, query = ''): Promise<any> {
  const response = await fetch(`${server.url}/v1/usage${query}`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200);
  return response.json();
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until a key's tasks have all ended (its usage rows reach `images`). */
async function settled(server: Server, key: string, images: number): Promise<any> {
  let report: any;
  await waitFor(async () => {
    report = await usage(server, key);
    return report.totals.images >= images;
  }, `${images} charged images`);
  return report;
}

/** A new key's two-image task, run and charged, then its record purged as the retention sweep does. */
async function chargedAndPurged(server: Server): Promise<{ k: Awaited<ReturnType<typeof newKey>>; t: Record<string, unknown> }> {
  const k = await newKey(server);
  const t = inference({ numberResults: 2 });
  assert.equal((await post(server, k.key, [t])).status, 200);
  await settled(server, k.key, 2);
  purgeTask(server, t.taskUUID);
  return { k, t };
}

/** Deletes a task's record as the retention sweep does; the ledger keeps its rows. */
function purgeTask(server: Server, taskUUID: unknown): void {
  const db = new Database(path.join(server.dataDir, 'kiln.sqlite'));
  try {
    db.prepare('DELETE FROM generations WHERE task_uuid = ?').run(String(taskUUID).toLowerCase());
    db.prepare('DELETE FROM tasks WHERE task_uuid = ?').run(String(taskUUID).toLowerCase());
  } finally {
    db.close();
  }
}

const sumMicros = (costs: readonly number[]): number => costs.reduce((sum, cost) => sum + Math.round(cost * 1_000_000), 0);

describe('fair queueing across API keys (in-process queue)', () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  test("B's one image starts after at most one image per worker slot, while A's 200 images still complete in order", async () => {
    const a = await newKey(server);
    const b = await newKey(server);
    server.engine.shut();
    server.engine.starts.length = 0;
    // A: 200 images queued (200 one-image tasks), the first one running and held at the gate.
    const aTasks = Array.from({ length: 200 }, (_, i) => inference({ positivePrompt: `key A task ${String(i).padStart(3, '0')}`, deliveryMethod: 'async' }));
    // One task per request, so that A's order is well defined (tasks of one request are accepted concurrently).
    for (const task of aTasks) {
      const answer = await post(server, a.key, [task]);
      assert.equal(answer.status, 200, JSON.stringify(answer.body.errors));
    }
    await waitFor(() => server.engine.starts.length === 1, 'the first task of A to start');
    const answer = await post(server, b.key, [inference({ positivePrompt: 'key B task', deliveryMethod: 'async' })]);
    assert.equal(answer.status, 200);
    server.engine.open();
    await settled(server, a.key, 200);
    const position = server.engine.starts.indexOf('key B task');
    // One worker slot: the A image running when B arrived, then B.
    assert.ok(position >= 0 && position <= 1, `B started at position ${position}`);
    const aOrder = server.engine.starts.filter((prompt) => prompt.startsWith('key A'));
    assert.deepEqual(aOrder, aTasks.map((t) => t.positivePrompt), "A's tasks ran in the order A sent them");
  });

  test("fairness counts images: A's started 20-image task hands its slot back, so B's image starts after the one image running when it came", async () => {
    const a = await newKey(server);
    const b = await newKey(server);
    server.engine.shut();
    server.engine.starts.length = 0;
    server.engine.slots.length = 0;
    const big = inference({ positivePrompt: 'A big', numberResults: 20, deliveryMethod: 'async' });
    const next = inference({ positivePrompt: 'A next', numberResults: 5, deliveryMethod: 'async' });
    assert.equal((await post(server, a.key, [big])).status, 200);
    assert.equal((await post(server, a.key, [next])).status, 200);
    await waitFor(() => server.engine.slots.length === 1, "A's first image to start");
    assert.equal((await post(server, b.key, [inference({ positivePrompt: 'B small', deliveryMethod: 'async' })])).status, 200);
    server.engine.open();
    const aUsage = await settled(server, a.key, 25);
    await settled(server, b.key, 1);
    const slots = server.engine.slots;
    assert.equal(slots.indexOf('B small#0'), 1, `B's image started at ${slots.indexOf('B small#0')}: ${slots.slice(0, 4).join(', ')}`);
    const expected = [...Array.from({ length: 20 }, (_, i) => `A big#${i}`), ...Array.from({ length: 5 }, (_, i) => `A next#${i}`)];
    assert.deepEqual(slots.filter((slot) => slot.startsWith('A')), expected, "A's images each made once, in order");
    // The task resumed where it stopped: 20 distinct images, each charged once.
    const bigRows = aUsage.rows.filter((row: any) => row.taskUUID === big.taskUUID);
    assert.equal(bigRows.length, 20);
    assert.equal(new Set(bigRows.map((row: any) => row.imageUUID)).size, 20);
    const answer = await post(server, a.key, [{ taskType: 'getResponse', taskUUID: big.taskUUID }]);
    assert.equal(answer.body.data.filter((item: any) => item.imageUUID).length, 20);
    assert.equal(answer.body.errors?.length ?? 0, 0);
  });

  test("a task that hands its slot back counts its images left as queued again for its key's --max-queued-images", async () => {
    const a = await newKey(server, '--max-queued-images', '6');
    const b = await newKey(server);
    server.engine.shut();
    server.engine.slots.length = 0;
    const big = inference({ positivePrompt: 'A yields', numberResults: 6, deliveryMethod: 'async' });
    assert.equal((await post(server, a.key, [big])).status, 200);
    await waitFor(() => server.engine.slots.length === 1, "A's first image to start");
    assert.equal((await post(server, b.key, [inference({ positivePrompt: 'B meanwhile', deliveryMethod: 'async' })])).status, 200);
    // A's first image finishes; A's task yields to B's, whose image then waits at the gate.
    server.engine.let(1);
    await waitFor(() => server.engine.slots.includes('B meanwhile#0'), "B's image to start");
    // A's five images left wait again: two more would pass its six queued images.
    const refused = await post(server, a.key, [inference({ positivePrompt: 'A more', numberResults: 2, deliveryMethod: 'async' })]);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.errors[0].limitType, 'queuedImages');
    assert.equal((await post(server, a.key, [inference({ positivePrompt: 'A one more', deliveryMethod: 'async' })])).status, 200, 'one more fits');
    server.engine.open();
    await settled(server, a.key, 7);
    await settled(server, b.key, 1);
  });

  test('a weighted key gets its share: weight 3 against 1 starts three images for each one', async () => {
    const heavy = await newKey(server, '--weight', '3');
    const light = await newKey(server);
    server.engine.shut();
    server.engine.starts.length = 0;
    await post(server, light.key, [inference({ positivePrompt: 'blocker', deliveryMethod: 'async' })]);
    await waitFor(() => server.engine.starts.length === 1, 'the blocker to start');
    await post(server, light.key, Array.from({ length: 8 }, (_, i) => inference({ positivePrompt: `light ${i}`, deliveryMethod: 'async' })));
    await post(server, heavy.key, Array.from({ length: 24 }, (_, i) => inference({ positivePrompt: `heavy ${i}`, deliveryMethod: 'async' })));
    server.engine.open();
    await settled(server, heavy.key, 24);
    await settled(server, light.key, 9);
    // In the first 16 starts after the blocker, the heavy key (weight 3) has about three quarters.
    const window = server.engine.starts.slice(1, 17);
    const heavyStarts = window.filter((p) => p.startsWith('heavy')).length;
    assert.ok(heavyStarts >= 10 && heavyStarts <= 13, `heavy got ${heavyStarts} of 16`);
  });
});

describe('per-key limits', () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  test('a rate of 1 task per second: the second task is refused with 429 rateLimitExceeded and Retry-After (REST)', async () => {
    const k = await newKey(server, '--rate', '1');
    const first = await post(server, k.key, [inference({ deliveryMethod: 'async' })]);
    assert.equal(first.status, 200);
    const task = inference({ deliveryMethod: 'async' });
    const second = await post(server, k.key, [task]);
    assert.equal(second.status, 429);
    assert.equal(second.headers.get('retry-after'), '1');
    const [error] = second.body.errors;
    assert.equal(error.code, 'rateLimitExceeded');
    assert.equal(error.taskUUID, task.taskUUID);
    assert.equal(error.limit, 1);
    // Refused tasks are not stored: the same taskUUID is accepted once the bucket refills.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const again = await post(server, k.key, [task]);
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  test('over WebSocket the rate limit is the same error item', async () => {
    const k = await newKey(server, '--rate', '1');
    const ws = await RawWsClient.connect(`${server.url.replace(/^http/, 'ws')}/v1`);
    try {
      await ws.authenticate(k.key);
      const a = inference({ deliveryMethod: 'async' });
      const b = inference({ deliveryMethod: 'async' });
      ws.send([a]);
      await ws.next((f) => (f.data ?? []).some((i: any) => i.taskUUID === a.taskUUID));
      ws.send([b]);
      const frame = await ws.next((f) => (f.errors ?? []).some((e: any) => e.taskUUID === b.taskUUID));
      const error = frame.errors.find((e: any) => e.taskUUID === b.taskUUID);
      assert.equal(error.code, 'rateLimitExceeded');
      assert.equal(error.limit, 1);
      assert.ok(error.retryAfter >= 1);
    } finally {
      ws.close();
    }
  });

  test('max concurrent images: past it, 429 queueFull with the limit and Retry-After; the taskUUID is reusable', async () => {
    const k = await newKey(server, '--max-concurrent-images', '2');
    server.engine.shut();
    const held = await post(server, k.key, [inference({ numberResults: 2, deliveryMethod: 'async' })]);
    assert.equal(held.status, 200);
    const task = inference({ deliveryMethod: 'async' });
    const refused = await post(server, k.key, [task]);
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.equal(refused.body.errors[0].code, 'queueFull');
    assert.equal(refused.body.errors[0].limit, 2);
    assert.equal(refused.body.errors[0].limitType, 'concurrentImages');
    assert.equal(refused.body.errors[0].taskUUID, task.taskUUID);
    const lookup = await post(server, k.key, [{ taskType: 'getResponse', taskUUID: task.taskUUID }]);
    assert.equal(lookup.body.errors[0].code, 'taskNotFound', 'a refused task is not stored');
    // Over WebSocket: the same error item.
    const ws = await RawWsClient.connect(`${server.url.replace(/^http/, 'ws')}/v1`);
    try {
      await ws.authenticate(k.key);
      ws.send([task]);
      const frame = await ws.next((f) => (f.errors ?? []).some((e: any) => e.taskUUID === task.taskUUID));
      const error = frame.errors.find((e: any) => e.taskUUID === task.taskUUID);
      assert.deepEqual([error.code, error.limitType, error.limit], ['queueFull', 'concurrentImages', 2]);
      assert.ok(error.retryAfter >= 1);
    } finally {
      ws.close();
    }
    server.engine.open();
    await settled(server, k.key, 2);
    const again = await post(server, k.key, [task]);
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  test('max queued images: waiting images past it are refused over REST and WebSocket', async () => {
    const other = await newKey(server);
    const k = await newKey(server, '--max-queued-images', '1');
    server.engine.shut();
    const before = server.engine.starts.length;
    await post(server, other.key, [inference({ positivePrompt: 'the busy one', deliveryMethod: 'async' })]);
    await waitFor(() => server.engine.starts.length > before && server.engine.starts.at(-1) === 'the busy one', 'the worker to be busy');
    assert.equal((await post(server, k.key, [inference({ deliveryMethod: 'async' })])).status, 200);
    const refused = await post(server, k.key, [inference({ deliveryMethod: 'async' })]);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.errors[0].code, 'queueFull');
    assert.equal(refused.body.errors[0].limitType, 'queuedImages');
    assert.equal(refused.body.errors[0].limit, 1);
    const ws = await RawWsClient.connect(`${server.url.replace(/^http/, 'ws')}/v1`);
    try {
      await ws.authenticate(k.key);
      const task = inference({ deliveryMethod: 'async' });
      ws.send([task]);
      const frame = await ws.next((f) => (f.errors ?? []).some((e: any) => e.taskUUID === task.taskUUID));
      assert.equal(frame.errors[0].code, 'queueFull');
      assert.equal(frame.errors[0].retryAfter, 1);
    } finally {
      ws.close();
      server.engine.open();
    }
  });

  test('defaults from configuration apply to keys without their own limits', async () => {
    const limited = await startServer({ KILN_KEY_MAX_CONCURRENT_IMAGES: '3' });
    try {
      // Four images at once can never fit a limit of three: refused outright (400, not a 429 to retry).
      const refused = await post(limited, TEST_KEY, [inference({ numberResults: 4 })]);
      assert.equal(refused.status, 400);
      assert.equal(refused.body.errors[0].max, 3);
      const own = await newKey(limited, '--max-concurrent-images', '10');
      assert.equal((await post(limited, own.key, [inference({ numberResults: 4 })])).status, 200);
    } finally {
      await limited.close();
    }
  });

  test('rate and queued-image defaults from configuration apply too, and a key of its own overrides them', async () => {
    const limited = await startServer({ KILN_KEY_RATE: '1', KILN_KEY_MAX_QUEUED_IMAGES: '2' });
    try {
      const plain = await newKey(limited);
      assert.equal((await post(limited, plain.key, [inference({ deliveryMethod: 'async' })])).status, 200);
      const second = await post(limited, plain.key, [inference({ deliveryMethod: 'async' })]);
      assert.equal(second.status, 429);
      assert.deepEqual([second.body.errors[0].code, second.body.errors[0].limit], ['rateLimitExceeded', 1]);
      // Three images waiting at once are past the default of two: refused outright (they never fit).
      const tooMany = await newKey(limited, '--rate', '100');
      const queued = await post(limited, tooMany.key, [inference({ numberResults: 3, deliveryMethod: 'async' })]);
      assert.equal(queued.status, 400, JSON.stringify(queued.body));
      assert.equal(queued.body.errors[0].max, 2);
      const own = await newKey(limited, '--rate', '100', '--max-queued-images', '10');
      for (let i = 0; i < 3; i++) assert.equal((await post(limited, own.key, [inference({ deliveryMethod: 'async' })])).status, 200);
    } finally {
      await limited.close();
    }
  });
});

describe('budgets, refunds, the ledger and dryRun', () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  test('a budget of exactly 5 images refuses the task that would pass it with 402 insufficientCredits', async () => {
    const k = await newKey(server, '--budget', '0.14', '--budget-period', 'total');
    const three = await post(server, k.key, [inference({ numberResults: 3 })]);
    assert.equal(three.status, 200);
    const task = inference({ numberResults: 3 });
    const over = await post(server, k.key, [task]);
    assert.equal(over.status, 402);
    assert.equal(over.body.errors[0].code, 'insufficientCredits');
    assert.equal(over.body.errors[0].taskUUID, task.taskUUID);
    assert.equal(over.body.errors[0].cost, 0.084);
    assert.equal(over.body.errors[0].budgetRemaining, 0.056);
    const two = await post(server, k.key, [inference({ numberResults: 2 })]);
    assert.equal(two.status, 200);
    const costs = [...three.body.data, ...two.body.data].map((item: any) => item.cost);
    const report = await usage(server, k.key);
    assert.deepEqual(report.totals, { images: 5, cost: 0.14 });
    assert.equal(sumMicros(costs), 140_000);
    assert.equal((await post(server, k.key, [inference()])).status, 402, 'nothing is left');
    // The refused task was never stored: with more budget, its taskUUID is accepted as new.
    const raised = await server.keys('update', k.id, '--budget', '0.3');
    assert.equal(raised.code, 0, raised.err);
    const again = await post(server, k.key, [task]);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.data.length, 3);
  });

  test('the same taskUUID twice in one request is a conflict, never a way around the budget or the limits', async () => {
    const k = await newKey(server, '--budget', '0.056', '--budget-period', 'total', '--max-concurrent-images', '2');
    const taskUUID = randomUUID();
    const small = inference({ taskUUID, numberResults: 1 });
    const large = inference({ taskUUID, numberResults: 10 });
    const answer = await post(server, k.key, [small, large]);
    assert.equal(answer.body.errors?.length, 1, JSON.stringify(answer.body));
    assert.equal(answer.body.errors[0].code, 'conflictTaskUUID');
    assert.equal(answer.body.data.length, 1);
    const report = await settled(server, k.key, 1);
    assert.deepEqual(report.totals, { images: 1, cost: 0.028 });
  });

  test('a taskUUID whose task was charged and then purged is never reused (its images would come free)', async () => {
    const { k, t } = await chargedAndPurged(server);
    const again = await post(server, k.key, [t]);
    assert.equal(again.status, 400);
    assert.equal(again.body.errors[0].code, 'conflictTaskUUID');
    assert.deepEqual((await usage(server, k.key)).totals, { images: 2, cost: 0.056 });
  });

  test('a task over a key\'s image limit on its own is a 400 (waiting would never help), not a 429', async () => {
    const k = await newKey(server, '--max-concurrent-images', '2');
    const answer = await post(server, k.key, [inference({ numberResults: 3 })]);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.errors[0].code, 'invalidNumberResults');
    assert.equal(answer.body.errors[0].max, 2);
    assert.equal(answer.headers.get('retry-after'), null);
  });

  test('a budget set mid-period counts what the key already spent in it', async () => {
    const k = await newKey(server);
    assert.equal((await post(server, k.key, [inference({ numberResults: 2 })])).status, 200);
    await settled(server, k.key, 2);
    const updated = await server.keys('update', k.id, '--budget', '0.1', '--budget-period', 'month');
    assert.equal(updated.code, 0, updated.err);
    // 0.056 spent this month: two more images (0.056) would pass 0.10.
    const over = await post(server, k.key, [inference({ numberResults: 2 })]);
    assert.equal(over.status, 402);
    assert.equal(over.body.errors[0].budgetRemaining, 0.044);
    assert.equal((await post(server, k.key, [inference({ numberResults: 1 })])).status, 200);
  });

  test('20 concurrent submissions racing for the last dollars never overspend', async () => {
    const k = await newKey(server, '--budget', '0.28', '--budget-period', 'day');
    // 0.28 USD is 10 images; 20 one-image tasks race for them.
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(server, k.key, [inference()])));
    const accepted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 402);
    assert.equal(accepted.length, 10);
    assert.equal(refused.length, 10);
    for (const answer of refused) assert.equal(answer.body.errors[0].code, 'insufficientCredits');
    const report = await usage(server, k.key);
    assert.deepEqual(report.totals, { images: 10, cost: 0.28 });
    assert.equal(sumMicros(accepted.map((a) => a.body.data[0].cost)), 280_000, "the ledger equals the clients' costs");
  });

  test('failed images are refunded: their price goes back to the budget and is never charged', async () => {
    const k = await newKey(server, '--budget', '0.112', '--budget-period', 'month');
    const failing = await post(server, k.key, [inference({ numberResults: 2, positivePrompt: 'please fail' })]);
    assert.equal(failing.body.errors[0].code, 'providerError');
    const estimate = await post(server, k.key, [inference({ numberResults: 4 })], '?dryRun=1');
    assert.equal(estimate.status, 200);
    assert.equal(estimate.body.data[0].budgetRemaining, 0.112, 'the whole budget is back');
    const four = await post(server, k.key, [inference({ numberResults: 4 })]);
    assert.equal(four.status, 200);
    assert.deepEqual((await usage(server, k.key)).totals, { images: 4, cost: 0.112 });
  });

  test('a cancelled task gives its held price back; kiln keys update changes the budget at once', async () => {
    const k = await newKey(server, '--budget', '0.084', '--budget-period', 'total');
    server.engine.shut();
    const before = server.engine.starts.length;
    const task = inference({ numberResults: 3, positivePrompt: 'to be cancelled', deliveryMethod: 'async' });
    assert.equal((await post(server, k.key, [task])).status, 200);
    await waitFor(() => server.engine.starts.length > before && server.engine.starts.at(-1) === 'to be cancelled', 'the task to start');
    const held = await post(server, k.key, [inference()], '?dryRun=1');
    assert.equal(held.body.data[0].budgetRemaining, 0, 'the three images are held');
    const cancelled = await post(server, k.key, [{ taskType: 'cancelTask', taskUUID: task.taskUUID }]);
    assert.equal(cancelled.body.data[0].cancelledImages, 3);
    server.engine.open();
    const back = await post(server, k.key, [inference()], '?dryRun=1');
    assert.equal(back.body.data[0].budgetRemaining, 0.084, 'nothing was charged');
    assert.deepEqual((await usage(server, k.key)).totals, { images: 0, cost: 0 });

    const updated = await server.keys('update', k.id, '--budget', '0.028', '--max-queued-images', '5', '--json');
    assert.equal(updated.code, 0, updated.err);
    const row = JSON.parse(updated.out);
    assert.deepEqual([row.budget, row.budgetPeriod, row.budgetRemaining, row.maxQueuedImages], [0.028, 'total', 0.028, 5]);
    assert.equal((await post(server, k.key, [inference({ numberResults: 2 })])).status, 402);
    assert.equal((await server.keys('update', k.id, '--budget', 'none')).code, 0);
    assert.equal((await post(server, k.key, [inference({ numberResults: 2 })])).status, 200);
    assert.equal((await server.keys('update', k.id, '--rate', 'fast')).code, 2, 'a bad value is refused');
  });

  test('dryRun=1 answers the cost and the budget left, charging, storing and queueing nothing', async () => {
    const k = await newKey(server, '--budget', '1', '--budget-period', 'total');
    const starts = server.engine.starts.length;
    const task = inference({ numberResults: 3 });
    const dry = await post(server, k.key, [task], '?dryRun=1');
    assert.equal(dry.status, 200);
    assert.deepEqual(dry.body.data[0], { taskType: 'imageInference', taskUUID: task.taskUUID, cost: 0.084, budgetRemaining: 1 });
    const lookup = await post(server, k.key, [{ taskType: 'getResponse', taskUUID: task.taskUUID }]);
    assert.equal(lookup.body.errors[0].code, 'taskNotFound');
    assert.equal(server.engine.starts.length, starts, 'nothing ran');
    assert.deepEqual((await usage(server, k.key)).totals, { images: 0, cost: 0 });
    // Over WebSocket (dryRun on the URL) the same estimate.
    const ws = await RawWsClient.connect(`${server.url.replace(/^http/, 'ws')}/v1?dryRun=1`);
    try {
      await ws.authenticate(k.key);
      ws.send([task]);
      const frame = await ws.next((f) => (f.data ?? []).some((i: any) => i.taskUUID === task.taskUUID));
      assert.equal(frame.data[0].cost, 0.084);
      assert.equal(frame.data[0].budgetRemaining, 1);
    } finally {
      ws.close();
    }
    // The real task then runs with its taskUUID.
    assert.equal((await post(server, k.key, [task])).status, 200);
  });

  test('GET /v1/usage shows only the caller\'s rows; kiln usage groups and sums them', async () => {
    const a = await newKey(server);
    const b = await newKey(server);
    const mine = await post(server, a.key, [inference({ numberResults: 2 })]);
    await post(server, b.key, [inference({ numberResults: 1, width: 4096, height: 4096 })]);
    const report = await usage(server, a.key, `?since=${new Date(Date.now() - 60_000).toISOString()}`);
    assert.deepEqual(report.totals, { images: 2, cost: 0.056 });
    assert.deepEqual(report.rows.map((r: any) => r.imageUUID).sort(), mine.body.data.map((i: any) => i.imageUUID).sort());
    assert.ok(report.rows.every((r: any) => r.apiKeyId === a.id && r.model === O3 && r.engine === 'gate'));
    // Rows up to `limit`; the totals still cover the whole range, and the answer says rows were left out.
    const one = await usage(server, a.key, '?limit=1');
    assert.equal(one.rows.length, 1);
    assert.deepEqual(one.totals, { images: 2, cost: 0.056 });
    assert.equal(one.truncated, true);
    assert.equal(report.truncated, undefined);
    const badLimit = await fetch(`${server.url}/v1/usage?limit=10001`, { headers: { authorization: `Bearer ${a.key}` } });
    assert.equal(badLimit.status, 400);
    const none = await usage(server, a.key, `?until=${new Date(Date.now() - 3_600_000).toISOString()}`);
    assert.deepEqual(none.totals, { images: 0, cost: 0 });
    const denied = await fetch(`${server.url}/v1/usage`, { headers: { authorization: 'Bearer kiln_not_a_key_000000000000000000000' } });
    assert.equal(denied.status, 401);

    let out = '';
    const code = await runUsageCommand(['--key', b.id, '--group-by', 'model', '--format', 'json'], { env: { KILN_DATA_DIR: server.dataDir }, out: (t) => (out += t), err: () => {} });
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(out), { totals: { images: 1, cost: 0.056 }, rows: [{ model: O3, images: 1, cost: 0.056 }] });
    out = '';
    await runUsageCommand(['--format', 'csv', '--group-by', 'key'], { env: { KILN_DATA_DIR: server.dataDir }, out: (t) => (out += t), err: () => {} });
    assert.match(out, /^key,images,cost\n/);

    const listed = await server.keys('list', '--json');
    const row = JSON.parse(listed.out).find((r: any) => r.id === a.id);
    assert.equal(row.usageImages, 2);
    assert.equal(row.usageCost, 0.056);
    assert.equal(row.budgetRemaining, null);
  });

  test('/metrics has per-key queued and running images and spend', async () => {
    const k = await newKey(server);
    server.engine.shut();
    const before = server.engine.starts.length;
    await post(server, k.key, [inference({ numberResults: 2, positivePrompt: 'metrics first', deliveryMethod: 'async' })]);
    await post(server, k.key, [inference({ numberResults: 3, deliveryMethod: 'async' })]);
    await waitFor(() => server.engine.starts.slice(before).includes('metrics first'), 'the first task to start');
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(text, new RegExp(`kiln_key_queued_images\\{key="${k.id}"\\} 3`));
    assert.match(text, new RegExp(`kiln_key_running_images\\{key="${k.id}"\\} 2`));
    // One image of the running task done: only its other image is still running.
    server.engine.let(1);
    await waitFor(async () => (await usage(server, k.key)).totals.images === 1, 'the first image');
    const partly = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(partly, new RegExp(`kiln_key_running_images\\{key="${k.id}"\\} 1`));
    assert.match(partly, new RegExp(`kiln_key_queued_images\\{key="${k.id}"\\} 3`));
    server.engine.open();
    await settled(server, k.key, 5);
    const after = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(after, new RegExp(`kiln_key_spend_usd_total\\{key="${k.id}"\\} 0.14`));
  });
});

describe('a refused reuse of a charged taskUUID holds no queue room', () => {
  let server: Server;
  before(async () => {
    server = await startServer({ KILN_QUEUE_MAX: '2' });
  });
  after(() => server.close());

  test('resending a purged task three times into a two-image queue leaves the queue empty', async () => {
    const { k, t } = await chargedAndPurged(server);
    for (let i = 0; i < 3; i++) {
      const again = await post(server, k.key, [t]);
      assert.equal(again.status, 400, JSON.stringify(again.body));
      assert.equal(again.body.errors[0].code, 'conflictTaskUUID');
    }
    // Each refusal gave back the reservation it made: a new two-image task still fits.
    const fresh = await post(server, k.key, [inference({ numberResults: 2 })]);
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal(fresh.body.data.length, 2);
  });
});

describe('the Runware clients see 402 and 429 as they expect', () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  test('AI SDK: APICallError with status 402 insufficientCredits, and 429 rateLimitExceeded with Retry-After', async () => {
    const broke = await newKey(server, '--budget', '0', '--budget-period', 'total');
    const runware = createRunware({ apiKey: broke.key, baseURL: `${server.url}/v1` });
    await assert.rejects(generateImage({ model: runware.image(O3), prompt: 'a cat', size: '1024x1024', maxRetries: 0 }), (error: unknown) => {
      assert.ok(APICallError.isInstance(error), String(error));
      assert.equal(error.statusCode, 402);
      assert.equal(JSON.parse(error.responseBody ?? '{}').errors[0].code, 'insufficientCredits');
      assert.equal(error.isRetryable, false);
      return true;
    });
    const slow = await newKey(server, '--rate', '0.5');
    const limited = createRunware({ apiKey: slow.key, baseURL: `${server.url}/v1` });
    await generateImage({ model: limited.image(O3), prompt: 'a cat', size: '1024x1024', maxRetries: 0 });
    await assert.rejects(generateImage({ model: limited.image(O3), prompt: 'a dog', size: '1024x1024', maxRetries: 0 }), (error: unknown) => {
      assert.ok(APICallError.isInstance(error), String(error));
      assert.equal(error.statusCode, 429);
      assert.equal(error.isRetryable, true, 'the AI SDK retries a 429');
      assert.equal(error.responseHeaders?.['retry-after'], '2');
      assert.equal(JSON.parse(error.responseBody ?? '{}').errors[0].code, 'rateLimitExceeded');
      return true;
    });
  });

  test('@runware/sdk-js: the rejection carries the error object with its code and taskUUID', async () => {
    const broke = await newKey(server, '--budget', '0.01', '--budget-period', 'total');
    const runware = new RunwareServer({ apiKey: broke.key, url: `${server.url.replace(/^http/, 'ws')}/v1`, shouldReconnect: false, timeoutDuration: 30_000 });
    await runware.ensureConnection();
    try {
      const taskUUID = randomUUID();
      await assert.rejects(runware.requestImages({ model: O3, positivePrompt: 'a cat', width: 1024, height: 1024, customTaskUUID: taskUUID } as any), (error: any) => {
        assert.equal(error.error.code, 'insufficientCredits');
        assert.equal(error.error.taskUUID, taskUUID);
        return true;
      });
    } finally {
      await runware.disconnect();
    }
    const slow = await newKey(server, '--rate', '0.5');
    const limited = new RunwareServer({ apiKey: slow.key, url: `${server.url.replace(/^http/, 'ws')}/v1`, shouldReconnect: false, timeoutDuration: 30_000 });
    await limited.ensureConnection();
    try {
      await limited.requestImages({ model: O3, positivePrompt: 'a cat', width: 1024, height: 1024 });
      await assert.rejects(limited.requestImages({ model: O3, positivePrompt: 'a dog', width: 1024, height: 1024 }), (error: any) => {
        assert.equal(error.error.code, 'rateLimitExceeded');
        assert.equal(error.error.retryAfter, 2);
        return true;
      });
    } finally {
      await limited.disconnect();
    }
  });
});

/** A queued two-image task of key `apiKeyId`, stored as a submission stores it. */
function storeQueuedTask(store: TaskStore, taskUUID: string, apiKeyId: string, at: number, request = '{}'): Promise<void> {
  return store.insertTask(
    { taskUUID, apiKeyId, taskType: 'imageInference', model: O3, engine: 'studio', request, status: 'queued', imageCount: 2, createdAt: at, updatedAt: at, finishedAt: null, expiresAt: null },
    [0, 1].map((index) => ({ taskUUID, index, seed: index + 1, seriesIndex: null, status: 'pending' as const, imageUUID: null, error: null, cost: null, nsfw: null, finishedAt: null })),
  );
}

const periodStores: [string, () => Promise<{ store: TaskStore; done(): Promise<void> }>, string | undefined][] = [
  [
    'SQLite',
    async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'kiln-periods-'));
      const store = await openTaskStore({ sqliteFile: path.join(dir, 'kiln.sqlite') });
      return { store, done: async () => { await store.close(); await rm(dir, { recursive: true, force: true }); } };
    },
    undefined,
  ],
  [
    'PostgreSQL',
    async () => {
      const database = await freshPostgresDatabase('periods');
      const store = await openTaskStore({ databaseUrl: database.url, sqliteFile: '' });
      return { store, done: async () => { await store.close(); await database.drop(); } };
    },
    await serviceProblem('postgres'),
  ],
];

for (const [name, open, problem] of periodStores) {
  describe(`budget periods in the store (${name})`, { skip: problem ?? false }, () => {
    const entry = (apiKeyId: string, at: number) => ({
      apiKeyId, taskUUID: randomUUID(), imageIndex: 0, imageUUID: randomUUID(), model: O3, engine: 'studio', width: 1024, height: 1024,
      priceMicros: 28_000, upstreamMicros: null, at,
    });
    // Days ahead of the real clock (setting a budget reads the period at the real time).
    const today = new Date();
    const [y, m, d] = [today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()];

    test('a charge that lands after midnight for the day before counts in the new day; the period never moves back', async () => {
      const { store, done } = await open();
      try {
        const id = randomUUID();
        await store.insertApiKey({ id, hash: randomUUID(), label: 'periods', webhookSecret: null, createdAt: 0 });
        const tenancy = store.tenancy();
        assert.equal(await tenancy.setLimits(id, { budgetMicros: 100_000, budgetPeriod: 'day' }), true);
        const lateOnDay1 = Date.UTC(y, m, d + 1, 23, 59, 59);
        const earlyOnDay2 = Date.UTC(y, m, d + 2, 0, 0, 10);
        assert.equal(await tenancy.charge(entry(id, earlyOnDay2)), true);
        // Made before midnight, committed after a charge of the new day.
        assert.equal(await tenancy.charge(entry(id, lateOnDay1)), true);
        const account = await tenancy.account(id);
        assert.equal(account?.periodStart, Date.UTC(y, m, d + 2));
        assert.equal(account?.spentMicros, 56_000);
        // A hold from a process whose clock is behind does not take the period back either.
        const held = await tenancy.hold({ taskUUID: randomUUID(), apiKeyId: id, images: 2, unitMicros: 28_000, now: lateOnDay1, defaults: { maxConcurrentImages: null, maxQueuedImages: null } });
        assert.equal(held.ok, false, 'two more images would pass the day\'s 0.10');
      } finally {
        await done();
      }
    });

    test('markQueued counts a task queued again only while it is queued (a run that claimed it meanwhile keeps it running)', async () => {
      const { store, done } = await open();
      try {
        const tenancy = store.tenancy();
        const id = randomUUID();
        await store.insertApiKey({ id, hash: randomUUID(), label: 'requeue', webhookSecret: null, createdAt: 0 });
        const at = Date.UTC(y, m, d, 12);
        const hold = (taskUUID: string) => tenancy.hold({ taskUUID, apiKeyId: id, images: 2, unitMicros: 28_000, now: at, defaults: { maxConcurrentImages: null, maxQueuedImages: 2 } });
        const yielded = randomUUID();
        assert.ok((await hold(yielded)).ok);
        await storeQueuedTask(store, yielded, id, at, '{}');
        await store.claimTask(yielded, at + 1);
        await tenancy.markStarted(yielded);
        // Claimed again (a stalled run taken over) before the yield's mark came: it stays running.
        await tenancy.markQueued(yielded);
        const next = randomUUID();
        assert.ok((await hold(next)).ok, 'two queued images fit while the first task runs');
        await tenancy.release(next);
        // Back in the queue for real: its two images are queued, and two more do not fit.
        await store.setTaskStatus(yielded, 'queued', at + 2);
        await tenancy.markQueued(yielded);
        const refused = await hold(randomUUID());
        assert.ok(!refused.ok && refused.reason === 'queuedImages', JSON.stringify(refused));
      } finally {
        await done();
      }
    });

    test('a hold stays with a stored twin when the submission that took it fails (release unlessStored); isHeld', async () => {
      const { store, done } = await open();
      try {
        const tenancy = store.tenancy();
        const id = randomUUID();
        await store.insertApiKey({ id, hash: randomUUID(), label: 'twins', webhookSecret: null, createdAt: 0 });
        const at = Date.UTC(y, m, d, 12);
        const hold = (taskUUID: string) => tenancy.hold({ taskUUID, apiKeyId: id, images: 2, unitMicros: 28_000, now: at, defaults: { maxConcurrentImages: null, maxQueuedImages: null } });
        const stored = randomUUID();
        assert.ok((await hold(stored)).ok);
        assert.equal(await tenancy.isHeld(stored), true);
        // The twin that found the hold made stored the task; the submission that made it failed.
        await storeQueuedTask(store, stored, id, at, '{}');
        await tenancy.release(stored, { unlessStored: true });
        assert.equal(await tenancy.isHeld(stored), true, 'the stored task keeps its hold');
        assert.equal((await tenancy.account(id))?.reservedMicros, 56_000);
        // Once the task has ended, the same release drops it; so it does when nothing was stored.
        await store.setTaskStatus(stored, 'failed', at + 1, at + 86_400_000);
        await tenancy.release(stored, { unlessStored: true });
        assert.equal(await tenancy.isHeld(stored), false);
        const lone = randomUUID();
        assert.ok((await hold(lone)).ok);
        await tenancy.release(lone, { unlessStored: true });
        assert.equal(await tenancy.isHeld(lone), false);
        assert.equal((await tenancy.account(id))?.reservedMicros, 0);
      } finally {
        await done();
      }
    });

    test('a charge counts each image once, with a hold (its price comes off it) and without one (one statement on PostgreSQL)', async () => {
      const { store, done } = await open();
      try {
        const tenancy = store.tenancy();
        const id = randomUUID();
        await store.insertApiKey({ id, hash: randomUUID(), label: 'charges', webhookSecret: null, createdAt: 0 });
        const at = Date.UTC(y, m, d, 12);
        // Without a hold: the ledger row and the key's counters, once per image.
        const free = { ...entry(id, at), taskUUID: randomUUID() };
        assert.equal(await tenancy.charge(free, { held: false }), true);
        assert.equal(await tenancy.charge(free, { held: false }), false, 'the same image twice');
        assert.equal(await tenancy.charge({ ...free, imageIndex: 1, priceMicros: 30_000 }, { held: false }), true);
        let account = await tenancy.account(id);
        assert.deepEqual([account?.usageImages, account?.usageMicros, account?.spentMicros, account?.reservedMicros], [2, 58_000, 58_000, 0]);
        assert.equal(await tenancy.wasCharged(free.taskUUID), true);
        const rows = await tenancy.usage({ apiKeyId: id });
        assert.deepEqual(rows.map((r) => [r.taskUUID, r.imageIndex, r.priceMicros]), [[free.taskUUID, 0, 28_000], [free.taskUUID, 1, 30_000]]);
        // With a hold: the price moves from reserved to spent.
        const heldTask = randomUUID();
        const request = { taskUUID: heldTask, apiKeyId: id, images: 2, unitMicros: 28_000, now: at, defaults: { maxConcurrentImages: null, maxQueuedImages: null } };
        const outcome = await tenancy.hold(request);
        assert.ok(outcome.ok && outcome.made, 'this call took the hold');
        // The same task held again (a twin submitted at the same moment): ok, but not this call's hold.
        const twin = await tenancy.hold(request);
        assert.ok(twin.ok && !twin.made);
        assert.equal((await tenancy.account(id))?.reservedMicros, 56_000);
        const paid = { ...entry(id, at), taskUUID: heldTask };
        assert.equal(await tenancy.charge(paid, { held: true }), true);
        assert.equal(await tenancy.charge(paid, { held: true }), false, 'the same image twice');
        account = await tenancy.account(id);
        assert.deepEqual([account?.usageImages, account?.spentMicros, account?.reservedMicros], [3, 86_000, 28_000]);
        // A charge of a key that no longer exists still writes its ledger row (nothing to count it on).
        const gone = { ...entry(randomUUID(), at) };
        assert.equal(await tenancy.charge(gone, { held: false }), true);
        assert.equal(await tenancy.wasCharged(gone.taskUUID), true);
      } finally {
        await done();
      }
    });

    test('a month starts its spending again; a total budget and a key without one never do', async () => {
      const { store, done } = await open();
      try {
        const tenancy = store.tenancy();
        const keys = { month: randomUUID(), total: randomUUID(), none: randomUUID() };
        for (const id of Object.values(keys)) await store.insertApiKey({ id, hash: randomUUID(), label: 'periods', webhookSecret: null, createdAt: 0 });
        assert.equal(await tenancy.setLimits(keys.month, { budgetMicros: 1_000_000, budgetPeriod: 'month' }), true);
        assert.equal(await tenancy.setLimits(keys.total, { budgetMicros: 1_000_000, budgetPeriod: 'total' }), true);
        const nextMonth = Date.UTC(y, m + 1, 3, 12);
        const monthAfter = Date.UTC(y, m + 2, 1, 0, 0, 5);
        for (const id of Object.values(keys)) {
          assert.equal(await tenancy.charge(entry(id, nextMonth)), true);
          assert.equal(await tenancy.charge(entry(id, monthAfter)), true);
        }
        const month = await tenancy.account(keys.month);
        assert.deepEqual([month?.periodStart, month?.spentMicros], [Date.UTC(y, m + 2, 1), 28_000]);
        const total = await tenancy.account(keys.total);
        assert.deepEqual([total?.periodStart, total?.spentMicros], [0, 56_000]);
        const none = await tenancy.account(keys.none);
        assert.deepEqual([none?.periodStart, none?.spentMicros], [0, 56_000]);
      } finally {
        await done();
      }
    });
  });
}


test('PostgreSQL: a twin that stored the task waits for a hold release in flight and sees the hold gone', { skip: (await serviceProblem('postgres')) ?? false }, async () => {
  const database = await freshPostgresDatabase('twin_hold');
  const store = await openTaskStore({ databaseUrl: database.url, sqliteFile: '' });
  const other = new pg.Client({ connectionString: database.url });
  await other.connect();
  try {
    const tenancy = store.tenancy();
    const id = randomUUID();
    await store.insertApiKey({ id, hash: randomUUID(), label: 'twins', webhookSecret: null, createdAt: 0 });
    const at = Date.now();
    const uuid = randomUUID();
    assert.ok((await tenancy.hold({ taskUUID: uuid, apiKeyId: id, images: 2, unitMicros: 28_000, now: at, defaults: { maxConcurrentImages: 10, maxQueuedImages: null } })).ok);
    // Another submission of the key is inside its hold: it has the key's row locked.
    await other.query('BEGIN');
    await other.query('UPDATE api_keys SET budget_reserved_micros = budget_reserved_micros WHERE id = $1', [id]);
    // The submission that made the hold failed before storing: its release deletes the hold, then waits for the key's row.
    const releasing = tenancy.release(uuid, { unlessStored: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Its twin stores the task, then checks the hold before queueing the job.
    await storeQueuedTask(store, uuid, id, at, '{"keyHold":true}');
    let answered: boolean | undefined;
    const checking = tenancy.isHeld(uuid).then((held) => (answered = held));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(answered, undefined, 'the check waits for the release in flight instead of reading past it');
    await other.query('COMMIT');
    await releasing;
    assert.equal(await checking, false, 'the hold is gone: the twin refuses its task (503) rather than run it unheld');
    assert.equal((await tenancy.account(id))?.reservedMicros, 0);
  } finally {
    await other.query('ROLLBACK').catch(() => undefined);
    await other.end();
    await store.close();
    await database.drop();
  }
});
