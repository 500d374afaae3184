/**
 * The operator's view (docs/operations.md): `/ready` with its checks, the per-stage and
 * delivery metrics and the scrape-time gauges of `/metrics`, and the one log line per task.
 * Real servers, a real loopback receiver for the webhook and the upload, a real PostgreSQL
 * whose database is closed to connections to make the store fail.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ChildServer } from './helpers/child-server.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';
import { startS3Server, type S3Server } from './helpers/s3-server.ts';
import { deleteRedisKeys, freshPostgresDatabase, REDIS_DB, redisUrl, serviceProblem, TEST_DATABASE_URL, uniquePrefix } from './helpers/services.ts';
import { RawWsClient } from './helpers/ws-client.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

// Before any test is registered: node:test starts running tests while a top-level await is pending.
const postgresProblem = await serviceProblem('postgres');
const redisProblem = await serviceProblem('redis');

const MODEL = 'kiln:studio@1';

async function getJson(url: string): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  const response = await fetch(url);
  return { status: response.status, body: await response.json(), ms: performance.now() - started };
}

async function scrape(server: { url: string }): Promise<string> {
  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** The value of one sample (`name{labels}`), or undefined when absent; labels in any order. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[3]);
  }
  return undefined;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('operator view on the default server (SQLite, in-process queue)', () => {
  let server: TestServer;
  let receiver: Receiver;
  before(async () => {
    receiver = await Receiver.start(() => 200);
    server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true', KILN_READY_MAX_QUEUED_IMAGES: '500' });
  });
  after(async () => {
    await server?.close();
    await receiver?.close();
  });

  test('/ready is 200 with every check listed, ok, with its latency', async () => {
    const { status, body, ms } = await getJson(`${server.url}/ready`);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.status, 'ready');
    assert.deepEqual(Object.keys(body.checks).sort(), ['events', 'queue', 'queueDepth', 'store']);
    for (const check of Object.values(body.checks) as any[]) {
      assert.equal(check.ok, true);
      assert.equal(typeof check.latencyMs, 'number');
    }
    assert.equal(body.checks.queueDepth.limit, 500);
    assert.equal(body.checks.queueDepth.queuedImages, 0);
    assert.ok(ms < 2_500, `answered in ${ms} ms`);
    // /health stays the liveness answer.
    assert.equal((await getJson(`${server.url}/health`)).body.status, 'ok');
  });

  test('a task with a webhook and an upload moves every metric, and ends with one log line', async () => {
    const before = await scrape(server);
    for (const name of ['kiln_queued_images', 'kiln_running_images', 'kiln_websocket_sessions']) {
      assert.equal(sample(before, name), 0, name);
    }
    for (const kind of ['webhook', 'upload']) assert.equal(sample(before, 'kiln_pending_deliveries', { kind }), 0);
    assert.equal(sample(before, 'kiln_queue_jobs', { state: 'waiting' }), 0);
    assert.equal(sample(before, 'kiln_source_up', { source: 'store' }), 1);
    // SQLite has no pool: the pool gauges are PostgreSQL's (checked below).
    assert.equal(sample(before, 'kiln_store_pool_connections', { state: 'busy' }), undefined);

    const client = await RawWsClient.connect(server.wsUrl);
    try {
      await client.authenticate(TEST_KEY);
      assert.equal(sample(await scrape(server), 'kiln_websocket_sessions'), 1);
    } finally {
      client.close();
    }

    const taskUUID = randomUUID();
    const ack = await post(server, [
      {
        taskType: 'imageInference',
        taskUUID,
        model: MODEL,
        positivePrompt: 'a crimson lighthouse on emerald cliffs at dusk',
        width: 256,
        height: 256,
        includeCost: true,
        safety: { checkContent: true },
        webhookURL: `${receiver.url}/hook`,
        uploadEndpoint: `${receiver.url}/bucket/out.jpg`,
      },
    ]);
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    await receiver.waitFor(2, undefined, 30_000);
    assert.deepEqual(receiver.requests.map((r) => r.method).sort(), ['POST', 'PUT']);

    const labels = { model: MODEL, engine: 'studio' };
    // The attempts are counted once their answers are read: wait for both.
    const after = await until('the delivery metrics', async () => {
      const text = await scrape(server);
      const done = ['webhook', 'upload'].every((kind) => (sample(text, 'kiln_delivery_seconds_count', { kind, outcome: 'delivered' }) ?? 0) >= 1);
      return done && (sample(text, 'kiln_task_duration_seconds_count', { ...labels, outcome: 'success' }) ?? 0) >= 1 ? text : undefined;
    });

    for (const stage of ['queue_wait', 'inputs', 'render', 'encode', 'safety', 'store', 'deliver']) {
      const count = sample(after, 'kiln_stage_seconds_count', { stage, ...labels });
      assert.ok(count !== undefined && count >= 1, `kiln_stage_seconds{stage="${stage}"} moved`);
      assert.ok((sample(after, 'kiln_stage_seconds_sum', { stage, ...labels }) ?? -1) >= 0);
      assert.ok(sample(after, 'kiln_stage_seconds_bucket', { stage, ...labels, le: '+Inf' }) === count);
    }
    assert.equal(sample(after, 'kiln_task_first_result_seconds_count', labels), 1);
    assert.equal(sample(after, 'kiln_task_duration_seconds_count', { ...labels, outcome: 'success' }), 1);
    assert.ok((sample(after, 'kiln_task_duration_seconds_sum', { ...labels, outcome: 'success' }) ?? 0) > 0);
    for (const kind of ['webhook', 'upload']) {
      assert.equal(sample(after, 'kiln_delivery_attempts_total', { kind, outcome: 'success' }), 1, kind);
      assert.equal(sample(after, 'kiln_delivery_attempt_seconds_count', { kind, outcome: 'success' }), 1, kind);
      assert.equal(sample(after, 'kiln_delivery_seconds_count', { kind, outcome: 'delivered' }), 1, kind);
    }
    assert.equal(sample(after, 'kiln_tasks_total', { model: MODEL, delivery: 'async' }), 1);
    assert.equal(sample(after, 'kiln_images_total', { model: MODEL, outcome: 'success' }), 1);
    assert.ok((sample(after, 'kiln_safety_checks_total', { verdict: 'clean' }) ?? 0) >= 1);
    // Once the task ended and its deliveries settled, the gauges are back at zero.
    assert.equal(sample(after, 'kiln_running_images'), 0);
    assert.equal(sample(after, 'kiln_queued_images'), 0);
    // The old names were relabelled, not kept beside the new ones.
    for (const gone of ['kiln_render_seconds', 'kiln_webhook_attempts_total', 'kiln_upload_attempts_total']) {
      assert.equal(after.includes(`\n${gone}`), false, gone);
    }
    // HELP and TYPE for every family named in docs/operations.md.
    for (const [name, type] of [
      ['kiln_stage_seconds', 'histogram'],
      ['kiln_task_first_result_seconds', 'histogram'],
      ['kiln_task_duration_seconds', 'histogram'],
      ['kiln_delivery_attempts_total', 'counter'],
      ['kiln_delivery_attempt_seconds', 'histogram'],
      ['kiln_delivery_seconds', 'histogram'],
      ['kiln_queued_images', 'gauge'],
      ['kiln_running_images', 'gauge'],
      ['kiln_pending_deliveries', 'gauge'],
      ['kiln_queue_jobs', 'gauge'],
      ['kiln_websocket_sessions', 'gauge'],
      ['kiln_store_pool_connections', 'gauge'],
      ['kiln_store_pool_max_connections', 'gauge'],
      ['kiln_store_pool_waiting_requests', 'gauge'],
      ['kiln_source_up', 'gauge'],
    ]) {
      assert.match(after, new RegExp(`# TYPE ${name} ${type}\n`), name);
    }

    const line = await until('the task log line', async () =>
      server.logs.find((entry) => entry.msg === 'task finished' && entry.taskUUID === taskUUID),
    );
    assert.equal(line.level, 30, 'info level');
    assert.equal(line.model, MODEL);
    assert.equal(line.engine, 'studio');
    assert.equal(line.outcome, 'success');
    assert.equal(line.images, 1);
    assert.equal(line.succeeded, 1);
    assert.equal(line.failed, 0);
    assert.equal(typeof line.apiKeyId, 'string');
    assert.ok((line.apiKeyId as string).length > 0);
    // The studio model is free: its cost is there, and zero.
    assert.equal(line.cost, 0);
    assert.ok((line.totalMs as number) >= (line.ms as number));
    assert.equal(typeof line.firstResultMs, 'number');
    const stages = line.stagesMs as Record<string, number>;
    assert.deepEqual(Object.keys(stages).sort(), ['deliver', 'encode', 'inputs', 'queue_wait', 'render', 'safety', 'store']);
    for (const ms of Object.values(stages)) assert.ok(Number.isInteger(ms) && ms >= 0);
    assert.equal(server.logs.filter((entry) => entry.msg === 'task finished' && entry.taskUUID === taskUUID).length, 1);
  });
});

test('docs/operations.md documents every kiln_ metric, and the Grafana dashboard uses only real ones', async () => {
  const server = await startTestServer();
  try {
    const text = await scrape(server);
    const families = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const ours = [...families.keys()].filter((name) => name.startsWith('kiln_'));
    assert.ok(ours.length >= 19, ours.join(' '));
    const operations = await readFile(path.join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');
    for (const name of ours) assert.ok(operations.includes(`\`${name}\``), `${name} is documented`);
    const dashboard = JSON.parse(await readFile(path.join(REPO_ROOT, 'docs', 'grafana-dashboard.json'), 'utf8'));
    const expressions: string[] = (dashboard.panels as any[]).flatMap((panel) => (panel.targets ?? []).map((target: any) => target.expr as string));
    assert.ok(expressions.length >= 20);
    const used = new Set(expressions.flatMap((expr) => expr.match(/\b(kiln|nodejs|process)_\w+/g) ?? []));
    for (const name of used) {
      const family = name.replace(/_(bucket|sum|count)$/, '');
      const known = families.get(name) !== undefined || families.get(family) === 'histogram';
      assert.ok(known, `the dashboard's ${name} is a real metric`);
    }
    for (const name of ours) {
      if (name === 'kiln_source_up' || name.startsWith('kiln_safety')) continue;
      assert.ok([...used].some((u) => u === name || u.startsWith(`${name}_`)), `${name} is on the dashboard`);
    }
  } finally {
    await server.close();
  }
});

describe('/ready on PostgreSQL follows the database', { skip: postgresProblem }, () => {
  let database: { url: string; drop(): Promise<void> };
  let name: string;
  let server: TestServer;
  let admin: pg.Client;
  before(async () => {
    database = await freshPostgresDatabase('operator_view');
    name = new URL(database.url).pathname.slice(1);
    server = await startTestServer({ KILN_DATABASE_URL: database.url, KILN_DATABASE_POOL: '4' });
    admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
  });
  after(async () => {
    await admin?.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => undefined);
    await admin?.end();
    await server?.close();
    await database?.drop();
  });

  test('200, then 503 naming the store while the database refuses connections, then 200 again', async () => {
    const healthy = await getJson(`${server.url}/ready`);
    assert.equal(healthy.status, 200, JSON.stringify(healthy.body));
    const metrics = await scrape(server);
    assert.equal(sample(metrics, 'kiln_store_pool_max_connections'), 4);
    assert.ok(sample(metrics, 'kiln_store_pool_connections', { state: 'idle' }) !== undefined);
    assert.ok((sample(metrics, 'kiln_store_pool_waiting_requests') ?? -1) >= 0);

    // New connections are refused and the open ones are cut: the store is gone for this process.
    await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    const down = await until('a 503', async () => {
      const answer = await getJson(`${server.url}/ready`);
      return answer.status === 503 ? answer : undefined;
    });
    assert.equal(down.body.status, 'unavailable');
    assert.deepEqual(down.body.failing, ['store']);
    assert.equal(down.body.checks.store.ok, false);
    assert.match(down.body.checks.store.error, /not currently accepting connections|terminat/i);
    assert.equal(down.body.checks.queue.ok, true);
    assert.equal(down.body.checks.events.ok, true);
    assert.ok(down.ms < 3_000, `answered in ${down.ms} ms`);
    // /health is liveness only: the process is alive.
    assert.equal((await getJson(`${server.url}/health`)).status, 200);
    // The store's gauges say the store did not answer, and /metrics itself still works.
    const blind = await scrape(server);
    assert.equal(sample(blind, 'kiln_source_up', { source: 'store' }), 0);
    assert.ok(Number.isNaN(sample(blind, 'kiln_queued_images')), 'unknown, not 0');
    assert.equal(sample(blind, 'kiln_pending_deliveries', { kind: 'webhook' }), undefined);

    await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
    const back = await until('a 200', async () => {
      const answer = await getJson(`${server.url}/ready`);
      return answer.status === 200 ? answer : undefined;
    });
    assert.equal(back.body.checks.store.ok, true);
  });
});

describe('a worker answers /ready over Redis, PostgreSQL and S3', { skip: postgresProblem ?? redisProblem }, () => {
  let s3: S3Server;
  let database: { url: string; drop(): Promise<void> };
  let dataDir: string;
  const prefix = uniquePrefix('operator');
  before(async () => {
    s3 = await startS3Server();
    database = await freshPostgresDatabase('operator_worker');
    dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-operator-'));
  });
  after(async () => {
    await s3?.close();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
    await deleteRedisKeys(redisUrl(REDIS_DB.misc), `${prefix}*`);
  });

  test('/ready lists the BullMQ queue and the Redis event bus, and /metrics has the queue gauges', async () => {
    const worker = await ChildServer.start(
      dataDir,
      {
        ...s3.env,
        KILN_DATABASE_URL: database.url,
        KILN_REDIS_URL: redisUrl(REDIS_DB.misc),
        KILN_REDIS_PREFIX: prefix,
        KILN_PUBLIC_URL: 'http://127.0.0.1:1',
      },
      'worker',
    );
    try {
      const ready = await getJson(`${worker.url}/ready`);
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      assert.equal(ready.body.role, 'worker');
      assert.deepEqual(Object.keys(ready.body.checks).sort(), ['events', 'queue', 'store']);
      assert.deepEqual(
        Object.values(ready.body.checks).map((check: any) => check.ok),
        [true, true, true],
      );
      assert.deepEqual({ waiting: ready.body.checks.queue.waiting, running: ready.body.checks.queue.running }, { waiting: 0, running: 0 });
      const metrics = await scrape(worker);
      assert.equal(sample(metrics, 'kiln_queue_jobs', { state: 'waiting' }), 0);
      assert.equal(sample(metrics, 'kiln_source_up', { source: 'queue' }), 1);
      assert.equal(sample(metrics, 'kiln_queued_images'), 0);
      assert.ok(sample(metrics, 'kiln_store_pool_max_connections')! >= 1);
      // A worker serves no WebSockets.
      assert.equal(sample(metrics, 'kiln_websocket_sessions'), 0);
    } finally {
      const exit = await worker.kill('SIGTERM');
      assert.equal(exit.code, 0);
    }
  });
});
