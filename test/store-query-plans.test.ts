/**
 * Every statement the task store sends in a task's life (and the sweeper's batch statements)
 * finds its rows through an index, on SQLite and on PostgreSQL. The store is filled with a few
 * thousand rows first; each statement the store sent is then explained with its own parameters.
 *
 * Stricter than "no sequential scan": a full walk of an index (SQLite `SCAN t USING INDEX`,
 * PostgreSQL an index scan without an `Index Cond`) reads every row too, and fails as well.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openTaskStore, type QueryObserver } from '../src/store/open-task-store.ts';
import type { DeliveryRecord, ImageRecord, TaskRecord, TaskStore } from '../src/store/task-store.ts';
import { freshPostgresDatabase, serviceProblem } from './helpers/services.ts';

// Before any test is registered: node:test starts running tests while a top-level await is pending.
const postgresProblem = await serviceProblem('postgres');

const TABLES = ['tasks', 'generations', 'images', 'deliveries', 'leases', 'api_keys', 'key_holds', 'usage_ledger'];
const T0 = 1_750_000_000_000;
const FILL_TASKS = 2_000;

interface Statement {
  readonly step: string;
  readonly sql: string;
  readonly parameters: readonly unknown[];
}

function task(taskUUID: string, createdAt: number): TaskRecord {
  return {
    taskUUID,
    apiKeyId: 'key-1',
    taskType: 'imageInference',
    model: 'klingai:o3@1',
    engine: 'studio',
    request: '{}',
    status: 'queued',
    imageCount: 2,
    createdAt,
    updatedAt: createdAt,
    finishedAt: null,
    expiresAt: null,
  };
}

const pendingGeneration = (taskUUID: string, index: number) =>
  ({ taskUUID, index, seed: index + 1, seriesIndex: null, status: 'pending', imageUUID: null, error: null, cost: null, nsfw: null, finishedAt: null }) as const;

function image(taskUUID: string | null, fields: Partial<ImageRecord> = {}): ImageRecord {
  const imageUUID = randomUUID();
  return {
    imageUUID,
    kind: 'generated',
    taskUUID,
    apiKeyId: 'key-1',
    format: 'jpg',
    width: 64,
    height: 64,
    bytes: 1_000,
    objectKey: `${imageUUID}.jpg`,
    createdAt: T0,
    expiresAt: T0 + 3_600_000,
    servable: true,
    ...fields,
  };
}

function delivery(taskUUID: string, fields: Partial<DeliveryRecord> = {}): DeliveryRecord {
  return {
    id: randomUUID(),
    taskUUID,
    apiKeyId: 'key-1',
    kind: 'webhook',
    url: 'https://example.com/hook',
    imageUUID: null,
    body: '{}',
    objectKey: null,
    notifyUrl: null,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: T0,
    lastError: null,
    createdAt: T0,
    ...fields,
  };
}

/** A few thousand finished, running and queued tasks with their images and deliveries. */
async function fill(store: TaskStore): Promise<void> {
  const one = async (i: number): Promise<void> => {
    const uuid = randomUUID();
    const at = T0 - (FILL_TASKS - i) * 1_000;
    // Every sixth task with a deadline (migration 7), half of them already past at the end.
    await store.insertTask({ ...task(uuid, at), deadlineAt: i % 6 === 0 ? at + 1_000_000 : null }, [pendingGeneration(uuid, 0), pendingGeneration(uuid, 1)]);
    const img = image(uuid, { createdAt: at, expiresAt: at + 3_600_000, servable: i % 2 === 0 });
    await store.insertImage(img);
    const status = i % 3 === 0 ? 'done' : i % 3 === 1 ? 'failed' : 'pending';
    await store.insertDeliveries([
      delivery(uuid, { imageUUID: img.imageUUID, status, createdAt: at, nextAttemptAt: at }),
      delivery(uuid, { kind: 'upload', imageUUID: img.imageUUID, body: null, objectKey: img.objectKey, status: i % 5 === 0 ? 'pending' : 'done', createdAt: at, nextAttemptAt: at }),
    ]);
    if (i % 4 !== 0) await store.setTaskStatus(uuid, i % 7 === 0 ? 'failed' : 'done', at + 500, at + 86_400_000);
    if (i % 10 === 0) await store.insertImage(image(null, { kind: 'upload', createdAt: at, expiresAt: at + 86_400_000 }));
    // Tenancy (migration 0004): holds of unfinished tasks, ledger rows of charged images, over a few keys.
    const apiKeyId = `key-${i % 5}`;
    await store.tenancy().hold({ taskUUID: uuid, apiKeyId, images: 2, unitMicros: 28_000, now: at, defaults: { maxConcurrentImages: null, maxQueuedImages: null } });
    await store.tenancy().charge({ apiKeyId, taskUUID: uuid, imageIndex: 0, imageUUID: img.imageUUID, model: 'm', engine: 'e', width: 64, height: 64, priceMicros: 28_000, upstreamMicros: null, at });
    if (i % 4 !== 0) await store.tenancy().release(uuid);
  };
  for (let i = 0; i < FILL_TASKS; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => one(i + j)));
}

/** Runs one task's life, and the sweeps, through the store; returns the statements each step sent. */
async function lifecycle(open: (onQuery: QueryObserver) => Promise<TaskStore>): Promise<Statement[]> {
  const statements: Statement[] = [];
  const steps: string[] = [];
  let step: string | undefined;
  const store = await open((sql, parameters) => {
    if (step !== undefined) statements.push({ step, sql, parameters });
  });
  const run = async <T>(name: string, call: () => Promise<T>): Promise<T> => {
    step = name;
    steps.push(name);
    try {
      return await call();
    } finally {
      step = undefined;
    }
  };
  try {
    await fill(store);
    const uuid = randomUUID().toUpperCase();
    const now = T0 + 10_000;
    await run('insertApiKey', () => store.insertApiKey({ id: 'key-x', hash: 'hash-x', label: 'x', webhookSecret: null, createdAt: now }));
    await run('findApiKeyByHash', () => store.findApiKeyByHash('hash-x'));
    await run('findApiKeyById', () => store.findApiKeyById('key-x'));
    await run('insertTask', () => store.insertTask(task(uuid, now), [pendingGeneration(uuid, 0), pendingGeneration(uuid, 1)]));
    const tenancy = store.tenancy();
    const held = uuid.toLowerCase();
    await run('tenancy.setLimits', () => tenancy.setLimits('key-x', { budgetMicros: 1_000_000, budgetPeriod: 'month', maxConcurrentImages: 10 }));
    await run('tenancy.account', () => tenancy.account('key-x'));
    const outcome = await run('tenancy.hold', () =>
      tenancy.hold({ taskUUID: held, apiKeyId: 'key-x', images: 2, unitMicros: 28_000, now, defaults: { maxConcurrentImages: null, maxQueuedImages: 5 } }),
    );
    assert.equal(outcome.ok, true);
    await run('tenancy.markStarted', () => tenancy.markStarted(held));
    await run('tenancy.markQueued', () => tenancy.markQueued(held));
    await run('tenancy.charge', () =>
      tenancy.charge({ apiKeyId: 'key-x', taskUUID: held, imageIndex: 0, imageUUID: randomUUID(), model: 'm', engine: 'e', width: 64, height: 64, priceMicros: 28_000, upstreamMicros: 27_000, at: now }),
    );
    // A task admitted without a hold: one statement on PostgreSQL.
    await run('tenancy.charge unheld', () =>
      tenancy.charge({ apiKeyId: 'key-x', taskUUID: held, imageIndex: 1, imageUUID: randomUUID(), model: 'm', engine: 'e', width: 64, height: 64, priceMicros: 28_000, upstreamMicros: null, at: now }, { held: false }),
    );
    await run('tenancy.refund', () => tenancy.refund(held, 1));
    await run('tenancy.isHeld', () => tenancy.isHeld(held));
    await run('tenancy.release unlessStored', () => tenancy.release(held, { unlessStored: true }));
    await run('tenancy.release', () => tenancy.release(held));
    await run('tenancy.holdsOlderThan', () => tenancy.holdsOlderThan(T0 - 1_900_000));
    await run('tenancy.wasCharged', () => tenancy.wasCharged(held));
    await run('tenancy.loadByKey', () => tenancy.loadByKey());
    await run('tenancy.usage by key', () => tenancy.usage({ apiKeyId: 'key-1', since: T0 - 100_000, until: T0 }));
    await run('tenancy.usage', () => tenancy.usage({ since: T0 - 100_000 }));
    await run('tenancy.usageTotals by key', () => tenancy.usageTotals({ apiKeyId: 'key-1', since: T0 - 100_000, until: T0 }));
    const fence = (await run('claimTask', () => store.claimTask(uuid, now)))?.fence;
    assert.equal(fence, 1);
    await run('getTask', () => store.getTask(uuid));
    await run('imagesAhead', () => store.imagesAhead(now));
    await run('listGenerations', () => store.listGenerations(uuid));
    await run('loadEngineState', () => store.loadEngineState(uuid, 0));
    await run('saveEngineState', () => store.saveEngineState(uuid, 0, '{"job":1}', fence));
    await run('saveEngineState unfenced', () => store.saveEngineState(uuid, 1, '{"job":2}'));
    const inline = image(uuid, { servable: false, expiresAt: null });
    await run('insertImage', () => store.insertImage(inline));
    await run('getImage', () => store.getImage(inline.imageUUID));
    const hook = delivery(uuid, { imageUUID: inline.imageUUID, nextAttemptAt: now, createdAt: now });
    const put = delivery(uuid, { kind: 'upload', imageUUID: inline.imageUUID, body: null, objectKey: inline.objectKey, nextAttemptAt: now, createdAt: now });
    await run('settleGeneration', () =>
      store.settleGeneration(uuid, 0, { status: 'success', imageUUID: inline.imageUUID, cost: 0.028, nsfw: false, finishedAt: now }, [hook, put], fence),
    );
    await run('settleGeneration unfenced', () => store.settleGeneration(uuid, 1, { status: 'error', error: '{}', finishedAt: now }, []));
    await run('setTaskStatus unfenced', () => store.setTaskStatus(uuid, 'running', now));
    await run('setTaskStatus', () => store.setTaskStatus(uuid, 'done', now + 1, now + 86_400_000, fence));
    await run('listDueDeliveries', () => store.listDueDeliveries(now, 100));
    await run('claimDelivery', () => store.claimDelivery(put.id, 'worker-1', now + 30_000, now));
    const notice = delivery(uuid, { body: '{"errors":[]}', nextAttemptAt: now, createdAt: now });
    await run('updateDelivery', () => store.updateDelivery(put.id, { status: 'failed', attempts: 1, nextAttemptAt: now, lastError: 'HTTP 500' }, [notice]));
    await run('insertDeliveries', () => store.insertDeliveries([delivery(uuid, { createdAt: now })]));
    await run('listFailedUploads', () => store.listFailedUploads(uuid));
    await run('recordDeliveryAttempt', () => store.recordDeliveryAttempt({ deliveryId: put.id, at: now, httpStatus: 500, error: 'HTTP 500', latencyMs: 3 }));
    await run('listTaskDeliveries', () => store.listTaskDeliveries(uuid));
    await run('getDelivery', () => store.getDelivery(put.id));
    await run('listPendingDeliveries', () => store.listPendingDeliveries());
    await run('listUnfinishedTasks', () => store.listUnfinishedTasks());
    await run('listOverdueTasks', () => store.listOverdueTasks(now, 200));
    await run('listOverdueTasks running', () => store.listOverdueTasks(now, 200, 'running'));
    await run('touchImage', () => store.touchImage(inline.imageUUID, now + 90_000_000));
    await run('acquireLease', () => store.acquireLease('sweeper', 'worker-1', now + 60_000, now));
    await run('listExpiredImages', () => store.listExpiredImages(T0 - 1_000_000, 100));
    await run('deleteImage', () => store.deleteImage(inline.imageUUID));
    await run('deleteExpiredTasks', () => store.deleteExpiredTasks(T0 - 1_000_000));
    await run('deleteSettledDeliveries', () => store.deleteSettledDeliveries(T0 - 1_500_000));
    await run('releaseLease', () => store.releaseLease('sweeper', 'worker-1'));
    const cancelled = randomUUID();
    await store.insertTask(task(cancelled, now), [pendingGeneration(cancelled, 0), pendingGeneration(cancelled, 1)]);
    await run('cancelTask', () => store.cancelTask(cancelled, now, now + 86_400_000, () => '{}', () => delivery(cancelled, { createdAt: now })));
    await run('deleteTask', () => store.deleteTask(uuid));
  } finally {
    await store.close();
  }
  const silent = steps.filter((name) => !statements.some((s) => s.step === name));
  assert.deepEqual(silent, [], 'every step sent a statement');
  return statements.filter((s) => /^\s*(select|insert|update|delete|with)\b/i.test(s.sql));
}

/** What an SQLite plan line says about a table in `TABLES`, if it reads every row. */
function sqliteProblem(detail: string): string | undefined {
  const scan = /^SCAN (\w+)/.exec(detail);
  return scan && TABLES.includes(scan[1] as string) ? detail : undefined;
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Plans?: PlanNode[];
}

/** Every index a PostgreSQL plan reads. */
function indexNames(node: PlanNode): string[] {
  return [...(node['Index Name'] === undefined ? [] : [node['Index Name']]), ...(node.Plans ?? []).flatMap(indexNames)];
}

/** PostgreSQL plan nodes on a table in `TABLES` that read every row (a seq scan, or an index walked without a condition). */
function postgresProblems(node: PlanNode): string[] {
  const own: string[] = [];
  const relation = node['Relation Name'];
  if (relation !== undefined && TABLES.includes(relation)) {
    const type = node['Node Type'];
    if (type === 'Seq Scan') own.push(`Seq Scan on ${relation}`);
    if ((type === 'Index Scan' || type === 'Index Only Scan') && node['Index Cond'] === undefined) {
      own.push(`${type} on ${relation} using ${node['Index Name']} without an Index Cond`);
    }
  }
  return [...own, ...(node.Plans ?? []).flatMap(postgresProblems)];
}

describe('task store query plans on SQLite', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-plans-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('every statement of a task, and the sweeps, search an index', async () => {
    const file = path.join(dir, 'kiln.sqlite');
    const statements = await lifecycle((onQuery) => openTaskStore({ sqliteFile: file, onQuery }));
    const sqlite = new Database(file, { readonly: true });
    try {
      const problems: string[] = [];
      for (const { step, sql, parameters } of statements) {
        const plan = sqlite.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...parameters) as { detail: string }[];
        for (const { detail } of plan) {
          const problem = sqliteProblem(detail);
          if (problem) problems.push(`${step}: ${problem} in ${sql}`);
        }
        // Searching tasks_status would read every queued task: the deadline index narrows it.
        if (step.startsWith('listOverdueTasks') && !plan.some(({ detail }) => detail.includes('tasks_deadline'))) problems.push(`${step}: not through tasks_deadline: ${JSON.stringify(plan)}`);
      }
      assert.deepEqual(problems, []);
    } finally {
      sqlite.close();
    }
  });
});

describe('task store query plans on PostgreSQL', { skip: postgresProblem ?? false }, () => {
  let database: { url: string; drop(): Promise<void> } | undefined;
  before(async () => {
    database = await freshPostgresDatabase('query_plans');
  });
  after(async () => database?.drop());

  test('every statement of a task, and the sweeps, use an index', async () => {
    const url = database?.url ?? '';
    const statements = await lifecycle((onQuery) => openTaskStore({ databaseUrl: url, sqliteFile: '', onQuery }));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query('ANALYZE');
      // Not a hint to use indexes: with seq scans priced out, a table without a usable index still shows one.
      await client.query('SET enable_seqscan = off');
      const problems: string[] = [];
      for (const { step, sql, parameters } of statements) {
        // EXPLAIN without ANALYZE plans the statement (parameters bound as the store binds them) and runs nothing.
        const { rows } = await client.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(`EXPLAIN (FORMAT JSON) ${sql}`, [...parameters]);
        const plan = rows[0]?.['QUERY PLAN'][0]?.Plan;
        assert.ok(plan, `${step}: no plan for ${sql}`);
        for (const problem of postgresProblems(plan)) problems.push(`${step}: ${problem} in ${sql}`);
        if (step.startsWith('listOverdueTasks') && !indexNames(plan).includes('tasks_deadline')) problems.push(`${step}: not through tasks_deadline: ${JSON.stringify(plan)}`);
      }
      assert.deepEqual(problems, []);
    } finally {
      await client.end();
    }
  });
});
