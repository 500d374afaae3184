/**
 * One list of assertions for the `TaskStore` port, run against SQLite (a temp file) and
 * PostgreSQL (a fresh database per run). Tests share one store per backend, so each uses its
 * own taskUUIDs; the sweeps (which see every row) use small timestamps no other test uses.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrations } from '../../src/store/migrations.ts';
import { openTaskStore } from '../../src/store/open-task-store.ts';
import {
  ClaimLostError,
  TaskConflictError,
  type DeliveryRecord,
  type GenerationRecord,
  type ImageRecord,
  type TaskRecord,
  type TaskStore,
} from '../../src/store/task-store.ts';
import { freshPostgresDatabase, serviceProblem } from '../helpers/services.ts';

// Before any test is registered: node:test starts running tests while a top-level await is pending.
const postgresProblem = await serviceProblem('postgres');

/** The store's DDL before migrations existed (`git show 199f809:src/store/sqlite-schema.ts`), verbatim. */
const OLD_SQLITE_DDL = [
  `CREATE TABLE IF NOT EXISTS api_keys (
     id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, label TEXT NOT NULL,
     webhook_secret TEXT, created_at INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS tasks (
     task_uuid TEXT PRIMARY KEY COLLATE NOCASE, api_key_id TEXT NOT NULL, task_type TEXT NOT NULL, model TEXT NOT NULL,
     engine TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL, image_count INTEGER NOT NULL,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER, expires_at INTEGER)`,
  `CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status, created_at)`,
  `CREATE INDEX IF NOT EXISTS tasks_expiry ON tasks(expires_at)`,
  `CREATE TABLE IF NOT EXISTS generations (
     task_uuid TEXT NOT NULL COLLATE NOCASE REFERENCES tasks(task_uuid) ON DELETE CASCADE, idx INTEGER NOT NULL,
     seed INTEGER NOT NULL, series_index INTEGER, status TEXT NOT NULL, image_uuid TEXT, error TEXT,
     cost REAL, nsfw INTEGER, finished_at INTEGER, engine_state TEXT, PRIMARY KEY (task_uuid, idx))`,
  `CREATE TABLE IF NOT EXISTS images (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, image_uuid TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, task_uuid TEXT, api_key_id TEXT,
     format TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, bytes INTEGER NOT NULL,
     object_key TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, servable INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS images_expiry ON images(expires_at)`,
  `CREATE TABLE IF NOT EXISTS deliveries (
     id TEXT PRIMARY KEY, task_uuid TEXT NOT NULL COLLATE NOCASE, api_key_id TEXT NOT NULL, kind TEXT NOT NULL, url TEXT NOT NULL,
     image_uuid TEXT, body TEXT, object_key TEXT, notify_url TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL, last_error TEXT, created_at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(status, next_attempt_at)`,
  `CREATE INDEX IF NOT EXISTS deliveries_task ON deliveries(task_uuid)`,
];

/** Epoch ms past 2^31, as real timestamps are. */
const T0 = 1_750_000_000_000;
/** An expiry no sweep in this suite reaches. */
const FAR = T0 + 10_000_000_000;

/** A taskUUID with upper-case letters, to check that the store lower-cases it. */
const mixedUUID = (): string => randomUUID().toUpperCase().replace(/^(.{4})/, (m) => m.toLowerCase());

function task(taskUUID: string, fields: Partial<TaskRecord> = {}): TaskRecord {
  return {
    taskUUID,
    apiKeyId: 'key-1',
    taskType: 'imageInference',
    model: 'klingai:o3@1',
    engine: 'studio',
    request: '{"positivePrompt":"a kiln"}',
    status: 'queued',
    imageCount: 2,
    createdAt: T0,
    updatedAt: T0,
    finishedAt: null,
    expiresAt: null,
    ...fields,
  };
}

function generation(taskUUID: string, index: number): GenerationRecord {
  return { taskUUID, index, seed: 1000 + index, seriesIndex: null, status: 'pending', imageUUID: null, error: null, cost: null, nsfw: null, finishedAt: null };
}

function image(fields: Partial<ImageRecord> = {}): ImageRecord {
  return {
    imageUUID: randomUUID(),
    kind: 'generated',
    taskUUID: null,
    apiKeyId: 'key-1',
    format: 'jpg',
    width: 1024,
    height: 768,
    bytes: 123_456,
    objectKey: `${randomUUID()}.jpg`,
    createdAt: T0,
    expiresAt: FAR,
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
    body: '{"data":[]}',
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

/** A task with `count` pending generations, inserted; returns its (mixed-case) UUID. */
async function seedTask(store: TaskStore, count = 2, fields: Partial<TaskRecord> = {}): Promise<string> {
  const uuid = mixedUUID();
  await store.insertTask(task(uuid, { imageCount: count, ...fields }), Array.from({ length: count }, (_, i) => generation(uuid, i)));
  return uuid;
}

interface Subject {
  /** The store the tests share (opened in the backend's `before`). */
  store: TaskStore;
  /** Opens another store on the same database. */
  open(options?: { poolSize?: number }): Promise<TaskStore>;
}

function taskStoreContract(subject: Subject): void {
  test('api keys: insert, find by hash and id, count; a second key with the same hash is ignored', async () => {
    const { store } = subject;
    const before = await store.countApiKeys();
    const key = { id: randomUUID(), hash: randomUUID(), label: 'ops', webhookSecret: 'whsec_abc', createdAt: T0 };
    await store.insertApiKey(key);
    await store.insertApiKey({ ...key, id: randomUUID(), label: 'copy' });
    assert.deepEqual(await store.findApiKeyByHash(key.hash), key);
    assert.deepEqual(await store.findApiKeyById(key.id), key);
    assert.equal(await store.countApiKeys(), before + 1);
    const bare = { id: randomUUID(), hash: randomUUID(), label: '', webhookSecret: null, createdAt: T0 + 1 };
    await store.insertApiKey(bare);
    assert.deepEqual(await store.findApiKeyById(bare.id), bare);
    assert.equal(await store.findApiKeyByHash('nope'), undefined);
    assert.equal(await store.findApiKeyById('nope'), undefined);
  });

  test('insertTask stores the task and its generations under the lower-case taskUUID; getTask in any case', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    const record = task(uuid, { imageCount: 3 });
    // Out of order on purpose: listGenerations orders by index.
    await store.insertTask(record, [{ ...generation(uuid, 2), seed: 2 ** 31 - 1 }, generation(uuid, 0), { ...generation(uuid, 1), seriesIndex: 4 }]);
    const expected = { ...record, taskUUID: uuid.toLowerCase(), claimedAt: null, deadlineAt: null };
    assert.deepEqual(await store.getTask(uuid), expected);
    assert.deepEqual(await store.getTask(uuid.toLowerCase()), expected);
    assert.deepEqual(await store.getTask(uuid.toUpperCase()), expected);
    const generations = await store.listGenerations(uuid.toUpperCase());
    assert.deepEqual(
      generations.map((g) => [g.taskUUID, g.index, g.seed, g.seriesIndex, g.status, g.imageUUID, g.error, g.cost, g.nsfw, g.finishedAt, g.upstreamCost ?? null]),
      [
        [uuid.toLowerCase(), 0, 1000, null, 'pending', null, null, null, null, null, null],
        [uuid.toLowerCase(), 1, 1001, 4, 'pending', null, null, null, null, null, null],
        [uuid.toLowerCase(), 2, 2 ** 31 - 1, null, 'pending', null, null, null, null, null, null],
      ],
    );
    assert.equal(await store.getTask(randomUUID()), undefined);
    assert.deepEqual(await store.listGenerations(randomUUID()), []);
  });

  test('insertTask on a taken taskUUID, in another case, throws TaskConflictError and writes nothing', async () => {
    const { store } = subject;
    const uuid = await seedTask(store, 1);
    const other = uuid.toLowerCase() === uuid ? uuid.toUpperCase() : uuid.toLowerCase();
    await assert.rejects(store.insertTask(task(other, { model: 'other' }), [generation(other, 0), generation(other, 1)]), (error: unknown) => {
      assert.ok(error instanceof TaskConflictError);
      assert.equal(error.taskUUID, uuid.toLowerCase());
      return true;
    });
    assert.equal((await store.getTask(uuid))?.model, 'klingai:o3@1');
    assert.equal((await store.listGenerations(uuid)).length, 1);
  });

  test('imagesAhead counts the unfinished images of running tasks and the images of tasks queued earlier', async () => {
    const { store } = subject;
    const base = T0 + 5_000_000;
    const before = await store.imagesAhead(base + 100);
    const running = mixedUUID();
    await store.insertTask(task(running, { imageCount: 3, createdAt: base, updatedAt: base }), [generation(running, 0), generation(running, 1), generation(running, 2)]);
    const fence = (await store.claimTask(running, base + 1))?.fence;
    await store.settleGeneration(running, 0, { status: 'success', imageUUID: randomUUID(), cost: 0, finishedAt: base + 2 }, [], fence);
    const queued = mixedUUID();
    await store.insertTask(task(queued, { imageCount: 4, createdAt: base + 10, updatedAt: base + 10 }), [0, 1, 2, 3].map((i) => generation(queued, i)));
    // Ahead of a task accepted after both: 2 unfinished running images + 4 queued ones.
    assert.equal((await store.imagesAhead(base + 100)) - before, 6);
    // Ahead of one accepted between them, the later queued task does not count.
    assert.equal((await store.imagesAhead(base + 100)) - (await store.imagesAhead(base + 5)), 4);
  });

  test('cancelTask ends the pending generations, the task and any earlier claim in one step', async () => {
    const { store } = subject;
    const uuid = await seedTask(store, 3);
    const fence = (await store.claimTask(uuid, T0 + 10))?.fence;
    const imageUUID = randomUUID();
    await store.settleGeneration(uuid, 0, { status: 'success', imageUUID, cost: 0.028, finishedAt: T0 + 20 }, [], fence);
    const hook = delivery(uuid, { createdAt: T0 + 30 });
    let built = '';
    const outcome = await store.cancelTask(uuid.toUpperCase(), T0 + 30, FAR, (indexes) => (built = JSON.stringify({ code: 'taskCancelled', indexes })), (error) => ({ ...hook, body: error }));
    assert.deepEqual(outcome, { cancelled: [1, 2], finished: [imageUUID] });
    assert.deepEqual(JSON.parse(built).indexes, [1, 2]);
    const generations = await store.listGenerations(uuid);
    assert.deepEqual(generations.map((g) => g.status), ['success', 'error', 'error']);
    assert.equal(generations[1]!.error, built);
    const record = await store.getTask(uuid);
    assert.equal(record?.status, 'done');
    assert.equal(record?.expiresAt, FAR);
    assert.equal((await store.getDelivery(hook.id))?.body, built);
    // The run that held the task cannot write any more, and nobody can claim it again.
    await assert.rejects(store.settleGeneration(uuid, 1, { status: 'success', imageUUID: randomUUID(), cost: 0, finishedAt: T0 + 40 }, [], fence), ClaimLostError);
    assert.equal((await store.claimTask(uuid, T0 + 50))?.fence, undefined);
    assert.equal(await store.cancelTask(uuid, T0 + 60, FAR, () => '{}'), undefined, 'an ended task is not cancelled again');
    // A task with nothing finished ends failed.
    const other = await seedTask(store, 2);
    assert.deepEqual(await store.cancelTask(other, T0 + 70, FAR, () => '{}'), { cancelled: [0, 1], finished: [] });
    assert.equal((await store.getTask(other))?.status, 'failed');
    await store.updateDelivery(hook.id, { status: 'done', attempts: 1, nextAttemptAt: 0, lastError: null });
  });

  test('claimTask returns increasing tokens and the record as claimed, marks the task running, and refuses ended or unknown tasks', async () => {
    const { store } = subject;
    const uuid = await seedTask(store);
    assert.equal((await store.claimTask(uuid, T0 + 10))?.fence, 1);
    const second = await store.claimTask(uuid.toLowerCase(), T0 + 20);
    assert.equal(second?.fence, 2);
    const claimed = await store.getTask(uuid);
    // The claim answers the record as it left it (one round trip for a run's start).
    assert.deepEqual(second?.task, claimed);
    assert.equal(claimed?.status, 'running');
    assert.equal(claimed?.updatedAt, T0 + 20);
    assert.equal(claimed?.claimedAt, T0 + 20, 'the latest start is kept (getResponse startedAt)');
    assert.equal(await store.claimTask(randomUUID(), T0), undefined);
    await store.setTaskStatus(uuid, 'done', T0 + 30, FAR, 2);
    assert.equal((await store.claimTask(uuid, T0 + 40))?.fence, undefined);
    assert.equal((await store.getTask(uuid))?.status, 'done');
  });

  test('concurrent claims of one task each get their own token', async () => {
    const { store } = subject;
    const uuid = await seedTask(store, 1);
    const tokens = await Promise.all(Array.from({ length: 12 }, (_, i) => store.claimTask(i % 2 ? uuid : uuid.toLowerCase(), T0 + i).then((claimed) => claimed?.fence)));
    assert.deepEqual([...tokens].sort((a, b) => (a ?? 0) - (b ?? 0)), Array.from({ length: 12 }, (_, i) => i + 1));
  });

  test('a stale fence gets ClaimLostError and writes nothing: no generation, no delivery, no status, no state', async () => {
    const { store } = subject;
    const uuid = await seedTask(store);
    const stale = (await store.claimTask(uuid, T0))?.fence;
    const current = (await store.claimTask(uuid, T0 + 1))?.fence;
    assert.ok(stale !== undefined && current !== undefined && current > stale);
    const hook = delivery(uuid);
    const update = { status: 'success', imageUUID: randomUUID(), cost: 0.01, finishedAt: T0 + 2 } as const;
    await assert.rejects(store.settleGeneration(uuid, 0, update, [hook], stale), ClaimLostError);
    // Without deliveries too (one statement instead of a transaction).
    await assert.rejects(store.settleGeneration(uuid, 0, update, [], stale), ClaimLostError);
    assert.equal((await store.listGenerations(uuid))[0]?.status, 'pending');
    assert.ok(!(await store.listPendingDeliveries()).some((d) => d.id === hook.id));
    // Ending with an expiry writes the task and its inline images together, or neither.
    const inline = image({ taskUUID: uuid, servable: false, expiresAt: null });
    await store.insertImage(inline);
    await assert.rejects(store.setTaskStatus(uuid, 'failed', T0 + 3, FAR, stale), ClaimLostError);
    assert.equal((await store.getTask(uuid))?.status, 'running');
    assert.equal((await store.getImage(inline.imageUUID))?.expiresAt, null);
    await assert.rejects(store.setTaskStatus(uuid, 'queued', T0 + 3, undefined, stale), ClaimLostError);
    assert.equal((await store.getTask(uuid))?.status, 'running');
    await store.saveEngineState(uuid, 0, 'mine', current);
    await assert.rejects(store.saveEngineState(uuid, 0, 'stale', stale), ClaimLostError);
    assert.equal(await store.loadEngineState(uuid, 0), 'mine');
    // The current fence writes.
    await store.settleGeneration(uuid.toUpperCase(), 0, update, [hook], current);
    assert.equal((await store.listGenerations(uuid))[0]?.status, 'success');
    assert.ok((await store.listPendingDeliveries()).some((d) => d.id === hook.id));
    await store.setTaskStatus(uuid, 'done', T0 + 4, FAR, current);
    assert.equal((await store.getTask(uuid))?.status, 'done');
    assert.equal((await store.getImage(inline.imageUUID))?.expiresAt, FAR);
    // Fences on an unknown task fail too.
    await assert.rejects(store.saveEngineState(randomUUID(), 0, 'x', 1), ClaimLostError);
  });

  test('settling an already-settled generation fails when fenced; unfenced it overwrites, as before', async () => {
    const { store } = subject;
    const uuid = await seedTask(store);
    const fence = (await store.claimTask(uuid, T0))?.fence;
    await store.settleGeneration(uuid, 1, { status: 'error', error: '{"code":"x"}', finishedAt: T0 + 1 }, [], fence);
    const again = delivery(uuid);
    await assert.rejects(
      store.settleGeneration(uuid, 1, { status: 'success', imageUUID: randomUUID(), finishedAt: T0 + 2 }, [again], fence),
      ClaimLostError,
    );
    assert.equal((await store.listGenerations(uuid))[1]?.status, 'error');
    assert.ok(!(await store.listPendingDeliveries()).some((d) => d.id === again.id));
    await assert.rejects(store.settleGeneration(uuid, 7, { status: 'error', finishedAt: T0 }, [], fence), ClaimLostError);
    await store.settleGeneration(uuid, 1, { status: 'success', imageUUID: 'img', finishedAt: T0 + 3 }, []);
    assert.equal((await store.listGenerations(uuid))[1]?.status, 'success');
  });

  test('settleGeneration records every field and the deliveries it causes; numbers come back as numbers', async () => {
    const { store } = subject;
    const uuid = await seedTask(store);
    const imageUUID = randomUUID();
    const hook = delivery(uuid, { imageUUID, nextAttemptAt: T0 + 5, createdAt: T0 + 5 });
    await store.settleGeneration(uuid, 0, { status: 'success', imageUUID, cost: 0.028, upstreamCost: 0.0265, nsfw: true, seed: 2 ** 31 + 7, finishedAt: T0 + 5 }, [hook]);
    await store.settleGeneration(uuid, 1, { status: 'error', error: '{"code":"timeout"}', nsfw: false, finishedAt: T0 + 6 }, []);
    const [ok, failed] = await store.listGenerations(uuid);
    assert.deepEqual(ok, {
      taskUUID: uuid.toLowerCase(),
      index: 0,
      seed: 2 ** 31 + 7,
      seriesIndex: null,
      status: 'success',
      imageUUID,
      error: null,
      cost: 0.028,
      upstreamCost: 0.0265,
      nsfw: true,
      finishedAt: T0 + 5,
    });
    assert.equal(ok?.cost, 0.028);
    assert.deepEqual([failed?.status, failed?.error, failed?.nsfw, failed?.cost, failed?.upstreamCost, failed?.imageUUID], ['error', '{"code":"timeout"}', false, null, null, null]);
    const stored = (await store.listPendingDeliveries()).find((d) => d.id === hook.id);
    assert.deepEqual(stored, { ...hook, taskUUID: uuid.toLowerCase() });
    for (const value of [stored?.nextAttemptAt, stored?.createdAt, ok?.finishedAt, ok?.seed]) {
      assert.equal(typeof value, 'number');
      assert.ok((value as number) > 2 ** 31);
    }
    const t = await store.getTask(uuid);
    assert.equal(typeof t?.createdAt, 'number');
    assert.equal(typeof t?.imageCount, 'number');
  });

  test('setTaskStatus: ending with an expiry dates the task and its inline images, not URL images or uploads', async () => {
    const { store } = subject;
    const uuid = await seedTask(store);
    const inline = image({ taskUUID: uuid, servable: false, expiresAt: null });
    const byUrl = image({ taskUUID: uuid.toUpperCase(), servable: true, expiresAt: T0 + 100 });
    const upload = image({ kind: 'upload', taskUUID: uuid, servable: false, expiresAt: T0 + 200 });
    const otherTask = image({ taskUUID: randomUUID(), servable: false, expiresAt: null });
    for (const i of [inline, byUrl, upload, otherTask]) await store.insertImage(i);
    await store.setTaskStatus(uuid, 'running', T0 + 1);
    assert.deepEqual(
      await store.getTask(uuid).then((t) => [t?.status, t?.updatedAt, t?.finishedAt, t?.expiresAt]),
      ['running', T0 + 1, null, null],
    );
    await store.setTaskStatus(uuid.toUpperCase(), 'done', T0 + 2, FAR);
    assert.deepEqual(
      await store.getTask(uuid).then((t) => [t?.status, t?.updatedAt, t?.finishedAt, t?.expiresAt]),
      ['done', T0 + 2, T0 + 2, FAR],
    );
    assert.equal((await store.getImage(inline.imageUUID))?.expiresAt, FAR);
    assert.equal((await store.getImage(byUrl.imageUUID))?.expiresAt, T0 + 100);
    assert.equal((await store.getImage(upload.imageUUID))?.expiresAt, T0 + 200);
    assert.equal((await store.getImage(otherTask.imageUUID))?.expiresAt, null);
    await store.setTaskStatus(uuid, 'done', T0 + 3, null);
    assert.equal((await store.getTask(uuid))?.expiresAt, null);
    // A task answered by URL (inlineImages false): its row is dated, nothing else is looked at.
    const urlTask = await seedTask(store);
    const stray = image({ taskUUID: urlTask, servable: false, expiresAt: null });
    await store.insertImage(stray);
    await store.setTaskStatus(urlTask, 'done', T0 + 4, FAR, undefined, false);
    assert.equal((await store.getTask(urlTask))?.expiresAt, FAR);
    assert.equal((await store.getImage(stray.imageUUID))?.expiresAt, null);
    // Unknown tasks are ignored when not fenced.
    await store.setTaskStatus(randomUUID(), 'failed', T0);
  });

  test('engine state: saved per generation, read back, undefined when absent', async () => {
    const { store } = subject;
    const uuid = await seedTask(store);
    assert.equal(await store.loadEngineState(uuid, 0), undefined);
    await store.saveEngineState(uuid, 0, '{"job":"abc"}');
    await store.saveEngineState(uuid.toUpperCase(), 1, '{"job":"def"}');
    assert.equal(await store.loadEngineState(uuid.toLowerCase(), 0), '{"job":"abc"}');
    assert.equal(await store.loadEngineState(uuid, 1), '{"job":"def"}');
    assert.equal(await store.loadEngineState(uuid, 9), undefined);
    assert.equal(await store.loadEngineState(randomUUID(), 0), undefined);
  });

  test('deleteTask removes the task and its generations, in any case; unknown ids are ignored', async () => {
    const { store } = subject;
    const uuid = await seedTask(store);
    await store.deleteTask(uuid.toUpperCase());
    assert.equal(await store.getTask(uuid), undefined);
    assert.deepEqual(await store.listGenerations(uuid), []);
    await store.deleteTask(randomUUID());
    // The taskUUID is free again.
    await store.insertTask(task(uuid), [generation(uuid, 0)]);
    assert.equal((await store.listGenerations(uuid)).length, 1);
  });

  test('listOverdueTasks: queued tasks past their deadline, earliest first; cancelTask onlyQueued leaves a claimed task to its run', async () => {
    const { store } = subject;
    const later = await seedTask(store, 1, { deadlineAt: T0 + 100 });
    const earlier = await seedTask(store, 2, { deadlineAt: T0 + 50 });
    const notYet = await seedTask(store, 1, { deadlineAt: T0 + 200 });
    const running = await seedTask(store, 1, { deadlineAt: T0 + 10 });
    const ended = await seedTask(store, 1, { deadlineAt: T0 + 20 });
    const none = await seedTask(store, 1);
    await store.claimTask(running, T0 + 5);
    await store.setTaskStatus(ended, 'failed', T0 + 30, FAR);
    const mine = (list: readonly TaskRecord[]): string[] => list.map((t) => t.taskUUID).filter((u) => [later, earlier, notYet, running, ended, none].some((m) => m.toLowerCase() === u));
    const overdue = await store.listOverdueTasks(T0 + 150, 100);
    assert.deepEqual(mine(overdue), [earlier.toLowerCase(), later.toLowerCase()]);
    assert.equal(overdue.find((t) => t.taskUUID === earlier.toLowerCase())?.deadlineAt, T0 + 50);
    assert.equal((await store.getTask(none))?.deadlineAt, null);
    assert.equal((await store.listOverdueTasks(T0 + 150, 1)).length, 1);
    // A run claimed it: the deadline's end leaves it alone (its run keeps the deadline itself).
    assert.equal(await store.cancelTask(running, T0 + 160, FAR, () => '{}', undefined, { onlyQueued: true }), undefined);
    assert.equal((await store.getTask(running))?.status, 'running');
    assert.deepEqual(await store.cancelTask(earlier, T0 + 160, FAR, () => '{}', undefined, { onlyQueued: true }), { cancelled: [0, 1], finished: [] });
    assert.deepEqual(mine(await store.listOverdueTasks(T0 + 150, 100)), [later.toLowerCase()]);
    // Running tasks are listed on their own (the backstop gives a live run time to end its task).
    assert.deepEqual(mine(await store.listOverdueTasks(T0 + 150, 100, 'running')), [running.toLowerCase()]);
    assert.deepEqual(mine(await store.listOverdueTasks(T0 + 5, 100, 'running')), []);
    assert.deepEqual(await store.cancelTask(running, T0 + 170, FAR, () => '{}'), { cancelled: [0], finished: [] });
    assert.deepEqual(mine(await store.listOverdueTasks(T0 + 150, 100, 'running')), []);
  });

  test('listUnfinishedTasks: queued and running tasks, oldest first', async () => {
    const { store } = subject;
    const newer = await seedTask(store, 1, { createdAt: T0 + 50 });
    const older = await seedTask(store, 1, { createdAt: T0 - 50 });
    const ended = await seedTask(store, 1, { createdAt: T0 - 60 });
    await store.claimTask(newer, T0 + 60);
    await store.setTaskStatus(ended, 'failed', T0 + 70, FAR);
    const mine = (await store.listUnfinishedTasks()).filter((t) => [newer, older, ended].some((u) => u.toLowerCase() === t.taskUUID));
    assert.deepEqual(
      mine.map((t) => [t.taskUUID, t.status]),
      [
        [older.toLowerCase(), 'queued'],
        [newer.toLowerCase(), 'running'],
      ],
    );
  });

  test('deleteExpiredTasks deletes ended tasks whose retention passed, with their generations', async () => {
    const { store } = subject;
    const expired = await seedTask(store, 2, { status: 'done', expiresAt: 100 });
    const alsoExpired = await seedTask(store, 1, { status: 'failed', expiresAt: 200 });
    const kept = await seedTask(store, 1, { status: 'done', expiresAt: 300 });
    const unfinished = await seedTask(store, 1);
    const deleted = await store.deleteExpiredTasks(200);
    assert.equal(deleted, 2);
    assert.equal(await store.getTask(expired), undefined);
    assert.equal(await store.getTask(alsoExpired), undefined);
    assert.deepEqual(await store.listGenerations(expired), []);
    assert.ok(await store.getTask(kept));
    assert.ok(await store.getTask(unfinished));
    assert.equal(await store.deleteExpiredTasks(200), 0);
  });

  test('deliveries: insert, list pending soonest first, update with follow-ups in one step, list failed uploads', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    const late = delivery(uuid, { nextAttemptAt: T0 + 30 });
    const soon = delivery(uuid, { nextAttemptAt: T0 + 10 });
    const upload = delivery(uuid, { kind: 'upload', url: 'https://bucket/put', body: null, objectKey: 'a.jpg', notifyUrl: 'https://example.com/hook', nextAttemptAt: T0 + 20, createdAt: T0 + 2 });
    const upload2 = delivery(uuid, { kind: 'upload', body: null, objectKey: 'b.jpg', nextAttemptAt: T0 + 20, createdAt: T0 + 1 });
    await store.insertDeliveries([late, soon, upload, upload2]);
    await store.insertDeliveries([]);
    const pending = (await store.listPendingDeliveries()).filter((d) => d.taskUUID === uuid.toLowerCase());
    assert.deepEqual(pending.map((d) => d.id).filter((id) => id !== upload2.id), [soon.id, upload.id, late.id]);
    const notice = delivery(uuid, { body: '{"errors":[{"code":"uploadFailed"}]}', nextAttemptAt: T0 + 40 });
    await store.updateDelivery(upload.id, { status: 'failed', attempts: 5, nextAttemptAt: T0 + 40, lastError: 'HTTP 500' }, [notice]);
    await store.updateDelivery(upload2.id, { status: 'failed', attempts: 1, nextAttemptAt: T0 + 40, lastError: 'HTTP 403' });
    await store.updateDelivery(soon.id, { status: 'done', attempts: 1, nextAttemptAt: T0 + 10, lastError: null });
    const after = (await store.listPendingDeliveries()).filter((d) => d.taskUUID === uuid.toLowerCase());
    assert.deepEqual(after.map((d) => d.id), [late.id, notice.id]);
    const failed = await store.listFailedUploads(uuid.toUpperCase());
    assert.deepEqual(failed.map((d) => d.id), [upload2.id, upload.id]);
    assert.deepEqual(failed[1], { ...upload, taskUUID: uuid.toLowerCase(), status: 'failed', attempts: 5, nextAttemptAt: T0 + 40, lastError: 'HTTP 500' });
    assert.deepEqual(await store.listFailedUploads(randomUUID()), []);
  });

  test('listDueDeliveries: pending, due and not leased (or lease expired), soonest first, at most limit', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    // Times below T0: no other test's delivery is due this early.
    const first = delivery(uuid, { nextAttemptAt: 1_000 });
    const second = delivery(uuid, { nextAttemptAt: 2_000 });
    const leased = delivery(uuid, { nextAttemptAt: 1_500 });
    const leaseExpired = delivery(uuid, { nextAttemptAt: 1_800 });
    const notDue = delivery(uuid, { nextAttemptAt: 3_000 });
    const done = delivery(uuid, { nextAttemptAt: 500, status: 'done' });
    await store.insertDeliveries([second, first, leased, leaseExpired, notDue, done]);
    assert.ok(await store.claimDelivery(leased.id, 'worker-a', 5_000, 1_000));
    assert.ok(await store.claimDelivery(leaseExpired.id, 'worker-a', 2_000, 1_000));
    const due = await store.listDueDeliveries(2_500, 10);
    assert.deepEqual(due.map((d) => d.id), [first.id, leaseExpired.id, second.id]);
    assert.deepEqual(due[0], { ...first, taskUUID: uuid.toLowerCase() });
    assert.deepEqual((await store.listDueDeliveries(2_500, 2)).map((d) => d.id), [first.id, leaseExpired.id]);
    assert.deepEqual(await store.listDueDeliveries(999, 10), []);
    for (const d of [first, second, leased, leaseExpired, notDue]) await store.updateDelivery(d.id, { status: 'done', attempts: 1, nextAttemptAt: 0, lastError: null });
  });

  test('claimDelivery: one owner at a time, renewable by its owner, taken over once expired, freed by updateDelivery', async () => {
    const { store } = subject;
    const d = delivery(mixedUUID(), { nextAttemptAt: T0 });
    await store.insertDeliveries([d]);
    const claimed = await store.claimDelivery(d.id, 'a', T0 + 1_000, T0);
    assert.deepEqual(claimed, { ...d, taskUUID: d.taskUUID.toLowerCase() });
    assert.equal(await store.claimDelivery(d.id, 'b', T0 + 2_000, T0 + 500), undefined);
    assert.ok(await store.claimDelivery(d.id, 'a', T0 + 1_500, T0 + 900), 'the owner renews');
    assert.equal(await store.claimDelivery(d.id, 'b', T0 + 2_000, T0 + 1_200), undefined, 'the renewed lease holds');
    assert.ok(await store.claimDelivery(d.id, 'b', T0 + 3_000, T0 + 1_600), 'an expired lease is taken over');
    assert.equal(await store.claimDelivery(d.id, 'a', T0 + 3_000, T0 + 1_700), undefined);
    // An attempt's outcome frees the lease: the next attempt may run anywhere.
    await store.updateDelivery(d.id, { status: 'pending', attempts: 1, nextAttemptAt: T0 + 1_800, lastError: 'HTTP 503' });
    const retry = await store.claimDelivery(d.id, 'a', T0 + 4_000, T0 + 1_800);
    assert.deepEqual([retry?.attempts, retry?.lastError, retry?.nextAttemptAt], [1, 'HTTP 503', T0 + 1_800]);
    await store.updateDelivery(d.id, { status: 'done', attempts: 2, nextAttemptAt: T0 + 1_800, lastError: null });
    assert.equal(await store.claimDelivery(d.id, 'a', T0 + 5_000, T0 + 1_900), undefined, 'a settled delivery is not claimed');
    assert.equal(await store.claimDelivery(randomUUID(), 'a', T0 + 5_000, T0), undefined);
  });

  test('updateDelivery for an owner records an outcome only while that owner holds the lease', async () => {
    const { store } = subject;
    const taskUUID = mixedUUID();
    const d = delivery(taskUUID, { nextAttemptAt: T0 });
    await store.insertDeliveries([d]);
    assert.ok(await store.claimDelivery(d.id, 'a', T0 + 1_000, T0));
    // a's lease ran out and b took over; a's late outcome (and its follow-up) is dropped.
    assert.ok(await store.claimDelivery(d.id, 'b', T0 + 3_000, T0 + 1_500));
    const notice = delivery(taskUUID, { nextAttemptAt: T0 });
    assert.equal(await store.updateDelivery(d.id, { status: 'failed', attempts: 1, nextAttemptAt: T0, lastError: 'HTTP 500' }, [notice], 'a'), false);
    assert.equal((await store.getDelivery(d.id))?.status, 'pending');
    assert.equal(await store.getDelivery(notice.id), undefined, 'no follow-up from a dropped outcome');
    assert.equal(await store.updateDelivery(d.id, { status: 'done', attempts: 1, nextAttemptAt: T0, lastError: null }, [], 'b'), true);
    assert.equal((await store.getDelivery(d.id))?.status, 'done');
    // Settled: no owner's late outcome changes it, while an unowned update (a redeliver) still does.
    assert.equal(await store.updateDelivery(d.id, { status: 'pending', attempts: 2, nextAttemptAt: T0, lastError: 'late' }, [], 'b'), false);
    assert.equal((await store.getDelivery(d.id))?.status, 'done');
    assert.equal(await store.updateDelivery(d.id, { status: 'pending', attempts: 0, nextAttemptAt: T0, lastError: null }), true);
    await store.updateDelivery(d.id, { status: 'done', attempts: 1, nextAttemptAt: T0, lastError: null });
  });

  test('twenty concurrent claimDelivery calls by different owners: exactly one wins', async () => {
    const { store } = subject;
    const d = delivery(mixedUUID(), { nextAttemptAt: T0 });
    await store.insertDeliveries([d]);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.claimDelivery(d.id, `owner-${i}`, T0 + 60_000, T0)));
    assert.equal(results.filter((r) => r !== undefined).length, 1);
    await store.updateDelivery(d.id, { status: 'done', attempts: 1, nextAttemptAt: T0, lastError: null });
  });

  test('deleteSettledDeliveries deletes done and failed deliveries created before the cut, not pending ones', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    const doneOld = delivery(uuid, { status: 'done', createdAt: 5_000 });
    const failedOld = delivery(uuid, { status: 'failed', createdAt: 5_100 });
    const pendingOld = delivery(uuid, { status: 'pending', createdAt: 5_000, nextAttemptAt: FAR });
    const doneNew = delivery(uuid, { status: 'done', createdAt: 7_000 });
    await store.insertDeliveries([doneOld, failedOld, pendingOld, doneNew]);
    assert.equal(await store.deleteSettledDeliveries(6_000), 2);
    assert.deepEqual((await store.listPendingDeliveries()).filter((d) => d.taskUUID === uuid.toLowerCase()).map((d) => d.id), [pendingOld.id]);
    assert.equal(await store.deleteSettledDeliveries(6_000), 0);
    assert.equal(await store.deleteSettledDeliveries(8_000), 1);
    await store.updateDelivery(pendingOld.id, { status: 'done', attempts: 1, nextAttemptAt: 0, lastError: null });
  });

  test('the delivery log: attempts numbered in order per delivery, listed with their task, deleted with their delivery', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    const hook = delivery(uuid, { status: 'done', createdAt: 1_000 });
    const put = delivery(uuid, { kind: 'upload', body: null, objectKey: 'x.png', createdAt: 1_001 });
    await store.insertDeliveries([hook, put]);
    await store.recordDeliveryAttempt({ deliveryId: hook.id, at: T0, httpStatus: 503, error: 'HTTP 503', latencyMs: 12 });
    await store.recordDeliveryAttempt({ deliveryId: hook.id, at: T0 + 300, httpStatus: null, error: 'connection refused', latencyMs: 1 });
    await store.recordDeliveryAttempt({ deliveryId: hook.id, at: T0 + 900, httpStatus: 204, error: null, latencyMs: 7 });
    await store.recordDeliveryAttempt({ deliveryId: put.id, at: T0 + 5, httpStatus: 200, error: null, latencyMs: 40 });
    const listed = await store.listTaskDeliveries(uuid.toUpperCase());
    assert.deepEqual(listed.map((d) => d.delivery.id), [hook.id, put.id]);
    assert.deepEqual(listed[0]!.attempts, [
      { deliveryId: hook.id, attempt: 1, at: T0, httpStatus: 503, error: 'HTTP 503', latencyMs: 12 },
      { deliveryId: hook.id, attempt: 2, at: T0 + 300, httpStatus: null, error: 'connection refused', latencyMs: 1 },
      { deliveryId: hook.id, attempt: 3, at: T0 + 900, httpStatus: 204, error: null, latencyMs: 7 },
    ]);
    assert.deepEqual(listed[1]!.attempts.map((a) => a.attempt), [1]);
    assert.equal((await store.getDelivery(put.id))?.kind, 'upload');
    assert.equal(await store.getDelivery(randomUUID()), undefined);
    assert.deepEqual(await store.listTaskDeliveries(mixedUUID()), []);
    // Settled and old: the delivery and its log go together.
    assert.equal(await store.deleteSettledDeliveries(1_001), 1);
    assert.deepEqual((await store.listTaskDeliveries(uuid)).map((d) => d.delivery.id), [put.id]);
    await store.updateDelivery(put.id, { status: 'done', attempts: 1, nextAttemptAt: 0, lastError: null });
  });

  test('acquireLease: exclusive until it expires, renewable, released only by its owner', async () => {
    const { store } = subject;
    const name = `sweeper-${randomUUID()}`;
    assert.equal(await store.acquireLease(name, 'a', T0 + 100, T0), true);
    assert.equal(await store.acquireLease(name, 'b', T0 + 200, T0 + 50), false);
    assert.equal(await store.acquireLease(name, 'a', T0 + 300, T0 + 90), true, 'the owner renews');
    assert.equal(await store.acquireLease(name, 'b', T0 + 400, T0 + 200), false, 'the renewal holds');
    assert.equal(await store.acquireLease(name, 'b', T0 + 500, T0 + 301), true, 'an expired lease is taken over');
    assert.equal(await store.acquireLease(name, 'a', T0 + 600, T0 + 302), false);
    await store.releaseLease(name, 'a');
    assert.equal(await store.acquireLease(name, 'a', T0 + 600, T0 + 303), false, 'only the owner releases');
    await store.releaseLease(name, 'b');
    assert.equal(await store.acquireLease(name, 'a', T0 + 600, T0 + 304), true);
    assert.equal(await store.acquireLease(`other-${name}`, 'b', T0 + 600, T0 + 304), true, 'leases are per name');
  });

  test('ten concurrent acquireLease calls by different owners: exactly one holds the lease', async () => {
    const { store } = subject;
    const name = `race-${randomUUID()}`;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.acquireLease(name, `owner-${i}`, T0 + 1_000, T0)));
    assert.equal(results.filter(Boolean).length, 1);
  });

  test('images: insert and get, touchImage only ever extends, deleteImage', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    const generated = image({ taskUUID: uuid, servable: false, bytes: 2 ** 31 + 1, expiresAt: T0 + 1_000 });
    const upload = image({ kind: 'upload', taskUUID: null, format: 'png', servable: true, expiresAt: null });
    await store.insertImage(generated);
    await store.insertImage(upload);
    assert.deepEqual(await store.getImage(generated.imageUUID), { ...generated, taskUUID: uuid.toLowerCase() });
    assert.deepEqual(await store.getImage(upload.imageUUID), upload);
    assert.equal(await store.getImage(randomUUID()), undefined);
    await store.touchImage(generated.imageUUID, T0 + 5_000);
    assert.equal((await store.getImage(generated.imageUUID))?.expiresAt, T0 + 5_000);
    await store.touchImage(generated.imageUUID, T0 + 2_000);
    assert.equal((await store.getImage(generated.imageUUID))?.expiresAt, T0 + 5_000, 'a touch never shortens');
    await store.touchImage(upload.imageUUID, T0 + 5_000);
    assert.equal((await store.getImage(upload.imageUUID))?.expiresAt, null, 'no expiry stays no expiry');
    // The sweeper's delete: only while expired by its cut (touched since: kept), never an image without expiry.
    assert.equal(await store.deleteImage(generated.imageUUID, T0 + 4_999), false);
    assert.equal(await store.deleteImage(upload.imageUUID, T0 + 1_000_000), false);
    assert.ok(await store.getImage(generated.imageUUID));
    assert.equal(await store.deleteImage(generated.imageUUID, T0 + 5_000), true);
    assert.equal(await store.getImage(generated.imageUUID), undefined);
    assert.equal(await store.deleteImage(randomUUID()), false);
    assert.equal(await store.deleteImage(upload.imageUUID), true);
  });

  test('findUpload: the upload stored under a taskUUID, whatever its case; never a generated image', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    const generated = image({ taskUUID: uuid, servable: false });
    await store.insertImage(generated);
    assert.equal(await store.findUpload(uuid), undefined);
    const other = mixedUUID();
    const upload = image({ kind: 'upload', taskUUID: other, format: 'png' });
    await store.insertImage(upload);
    assert.deepEqual(await store.findUpload(other.toUpperCase()), { ...upload, taskUUID: other.toLowerCase() });
    assert.equal((await store.findUpload(other.toLowerCase()))?.imageUUID, upload.imageUUID);
    assert.equal(await store.findUpload(randomUUID()), undefined);
  });

  test('listExpiredImages: expired first, at most limit, never while an upload of the image is pending', async () => {
    const { store } = subject;
    const uuid = mixedUUID();
    // Expiries below T0: no other test's image has expired this early.
    const a = image({ taskUUID: uuid, expiresAt: 300 });
    const b = image({ taskUUID: uuid, expiresAt: 100 });
    const uploading = image({ taskUUID: uuid, expiresAt: 200 });
    const live = image({ taskUUID: uuid, expiresAt: 10_000 });
    for (const i of [a, b, uploading, live]) await store.insertImage(i);
    const put = delivery(uuid, { kind: 'upload', imageUUID: uploading.imageUUID, body: null, objectKey: uploading.objectKey, nextAttemptAt: FAR });
    const doneHook = delivery(uuid, { imageUUID: a.imageUUID, status: 'done' });
    await store.insertDeliveries([put, doneHook]);
    assert.deepEqual((await store.listExpiredImages(500, 10)).map((i) => i.imageUUID), [b.imageUUID, a.imageUUID]);
    assert.deepEqual(await store.listExpiredImages(500, 10).then((l) => l[0]), { ...b, taskUUID: uuid.toLowerCase() });
    assert.deepEqual((await store.listExpiredImages(500, 1)).map((i) => i.imageUUID), [b.imageUUID]);
    assert.deepEqual((await store.listExpiredImages(150, 10)).map((i) => i.imageUUID), [b.imageUUID]);
    await store.updateDelivery(put.id, { status: 'failed', attempts: 5, nextAttemptAt: FAR, lastError: 'HTTP 500' });
    assert.deepEqual((await store.listExpiredImages(500, 10)).map((i) => i.imageUUID), [b.imageUUID, uploading.imageUUID, a.imageUUID]);
    for (const i of [a, b, uploading, live]) await store.deleteImage(i.imageUUID);
    assert.deepEqual(await store.listExpiredImages(500, 10), []);
  });

  test('a second store on the same database sees the data (migrations run once, reopening is idempotent)', async () => {
    const { store } = subject;
    const uuid = await seedTask(store, 1);
    const again = await subject.open();
    try {
      assert.deepEqual(await again.getTask(uuid), await store.getTask(uuid));
      assert.equal((await again.claimTask(uuid, T0))?.fence, 1);
      assert.equal((await store.claimTask(uuid, T0))?.fence, 2);
    } finally {
      await again.close();
    }
  });
}

describe('TaskStore on SQLite', () => {
  let dir = '';
  const file = (): string => path.join(dir, 'kiln.sqlite');
  const subject: Subject = {
    store: undefined as unknown as TaskStore,
    open: () => openTaskStore({ sqliteFile: file() }),
  };
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-task-store-'));
    subject.store = await subject.open();
  });
  after(async () => {
    await subject.store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  taskStoreContract(subject);

  test('a file made by the old ad-hoc DDL is adopted as it is, its taskUUIDs lower-cased', async () => {
    const oldFile = path.join(dir, 'old.sqlite');
    const uuid = 'AbCdEf01-2345-4678-9ABC-DEF012345678';
    const key = uuid.toLowerCase();
    const old = new Database(oldFile);
    old.pragma('journal_mode = WAL');
    for (const statement of OLD_SQLITE_DDL) old.exec(statement);
    old
      .prepare(`INSERT INTO tasks VALUES (?, 'key-1', 'imageInference', 'klingai:o3@1', 'studio', '{}', 'running', 2, ?, ?, NULL, NULL)`)
      .run(uuid, T0, T0);
    old.prepare(`INSERT INTO generations (task_uuid, idx, seed, status, cost) VALUES (?, 0, 5, 'success', 0.028), (?, 1, 6, 'pending', NULL)`).run(uuid, uuid);
    old
      .prepare(`INSERT INTO images (image_uuid, kind, task_uuid, api_key_id, format, width, height, bytes, object_key, created_at, expires_at, servable)
                VALUES ('img-1', 'generated', ?, 'key-1', 'jpg', 64, 64, 100, 'img-1.jpg', ?, NULL, 0)`)
      .run(uuid, T0);
    old
      .prepare(`INSERT INTO deliveries VALUES ('del-1', ?, 'key-1', 'upload', 'https://bucket/put', 'img-1', NULL, 'img-1.jpg', NULL, 'failed', 5, ?, 'HTTP 500', ?)`)
      .run(uuid, T0, T0);
    old.close();

    const store = await openTaskStore({ sqliteFile: oldFile });
    try {
      const t = await store.getTask(uuid);
      assert.deepEqual([t?.taskUUID, t?.status, t?.createdAt], [key, 'running', T0]);
      assert.deepEqual(
        (await store.listGenerations(key)).map((g) => [g.taskUUID, g.index, g.status, g.cost]),
        [
          [key, 0, 'success', 0.028],
          [key, 1, 'pending', null],
        ],
      );
      assert.equal((await store.getImage('img-1'))?.taskUUID, key);
      assert.deepEqual((await store.listFailedUploads(key)).map((d) => [d.id, d.taskUUID]), [['del-1', key]]);
      const fence = (await store.claimTask(uuid, T0 + 1))?.fence;
      assert.equal(fence, 1);
      await store.settleGeneration(key, 1, { status: 'success', imageUUID: 'img-2', finishedAt: T0 + 2 }, [], fence);
      await store.setTaskStatus(key, 'done', T0 + 3, FAR, fence);
      assert.equal((await store.getImage('img-1'))?.expiresAt, FAR, 'images of the task are found by its lower-case key');
      await assert.rejects(store.insertTask(task(uuid.toUpperCase()), []), TaskConflictError);
    } finally {
      await store.close();
    }
    const check = new Database(oldFile, { readonly: true });
    try {
      const ran = check.prepare('SELECT name FROM kiln_migrations ORDER BY name').all() as { name: string }[];
      assert.deepEqual(ran.map((r) => r.name), ['0001_initial', '0002_claims_and_leases', '0003_key_lifecycle', '0004_tenancy', '0005_delivery_attempts', '0006_upstream_cost', '0007_task_deadlines']);
    } finally {
      check.close();
    }
    const reopened = await openTaskStore({ sqliteFile: oldFile });
    assert.equal((await reopened.getTask(key))?.status, 'done');
    await reopened.close();
  });

  test('three stores opening one fresh file at once migrate it once', async () => {
    const shared = path.join(dir, 'shared.sqlite');
    const stores = await Promise.all([1, 2, 3].map(() => openTaskStore({ sqliteFile: shared })));
    try {
      const uuid = await seedTask(stores[0] as TaskStore, 1);
      assert.equal((await stores[2]?.claimTask(uuid, T0))?.fence, 1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});

describe('TaskStore on PostgreSQL', { skip: postgresProblem ?? false }, () => {
  let database: { url: string; drop(): Promise<void> } | undefined;
  const subject: Subject = {
    store: undefined as unknown as TaskStore,
    // A pool larger than the concurrent tests' fan-out, so each racer has its own connection.
    open: (options = {}) => openTaskStore({ databaseUrl: database?.url ?? '', sqliteFile: '', poolSize: options.poolSize ?? 24 }),
  };
  before(async () => {
    database = await freshPostgresDatabase('task_store');
    subject.store = await subject.open();
  });
  after(async () => {
    await subject.store?.close();
    await database?.drop();
  });

  taskStoreContract(subject);

  test('timestamps are bigint, cost double precision, flags integers; pg\'s global parsers are untouched', async () => {
    const client = new pg.Client({ connectionString: database?.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
        `SELECT table_name, column_name, data_type FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name NOT LIKE 'kiln_migrations%'
            AND data_type NOT IN ('text') ORDER BY table_name, column_name`,
      );
      const types = Object.fromEntries(rows.map((r) => [`${r.table_name}.${r.column_name}`, r.data_type]));
      const bigint = [
        'api_keys.created_at',
        'api_keys.previous_webhook_secret_until',
        'api_keys.revoked_at',
        'deliveries.created_at',
        'deliveries.lease_until',
        'deliveries.next_attempt_at',
        'delivery_attempts.at',
        'generations.finished_at',
        'generations.seed',
        'images.bytes',
        'images.created_at',
        'images.expires_at',
        'images.seq',
        'leases.until',
        'tasks.claimed_at',
        'tasks.created_at',
        'tasks.deadline_at',
        'tasks.expires_at',
        'tasks.finished_at',
        'tasks.updated_at',
        // Migration 0004 (tenancy): money in integer micro-dollars.
        'api_keys.budget_micros',
        'api_keys.budget_period_start',
        'api_keys.budget_reserved_micros',
        'api_keys.budget_spent_micros',
        'api_keys.usage_images',
        'api_keys.usage_micros',
        'key_holds.created_at',
        'key_holds.held_micros',
        'key_holds.unit_micros',
        'usage_ledger.created_at',
        'usage_ledger.price_micros',
        'usage_ledger.upstream_micros',
      ];
      const tenancyIntegers = ['api_keys.fair_weight', 'api_keys.max_concurrent_images', 'api_keys.max_queued_images', 'key_holds.images', 'key_holds.started', 'usage_ledger.height', 'usage_ledger.image_index', 'usage_ledger.width'];
      const integer = ['deliveries.attempts', 'delivery_attempts.attempt', 'delivery_attempts.http_status', 'delivery_attempts.latency_ms', 'generations.idx', 'generations.nsfw', 'generations.series_index', 'images.height', 'images.servable', 'images.width', 'tasks.claim_token', 'tasks.image_count'];
      assert.deepEqual(types, {
        ...Object.fromEntries(bigint.map((c) => [c, 'bigint'])),
        ...Object.fromEntries([...integer, ...tenancyIntegers].map((c) => [c, 'integer'])),
        'generations.cost': 'double precision',
        'generations.upstream_cost': 'double precision',
        'api_keys.rate_per_second': 'double precision',
      });
    } finally {
      await client.end();
    }
    // The store parses INT8 as numbers on its own pool only.
    assert.equal(pg.types.getTypeParser(20, 'text')('12'), '12');
  });

  test('a fenced settle that waits on a claim being committed sees it and writes nothing; one that comes first makes the claim wait', async () => {
    const { store } = subject;
    const uuid = await seedTask(store, 2);
    const fence = (await store.claimTask(uuid, T0))?.fence;
    const update = { status: 'success', imageUUID: randomUUID(), cost: 0.01, finishedAt: T0 + 1 } as const;
    const other = new pg.Client({ connectionString: database?.url });
    await other.connect();
    try {
      // Another worker's claim, not yet committed, holds the task's row.
      await other.query('BEGIN');
      await other.query('UPDATE tasks SET claim_token = claim_token + 1 WHERE task_uuid = $1', [uuid.toLowerCase()]);
      let settled = false;
      // Its outcome is kept as a value, so an early answer fails the check below, not the process.
      const settling = store.settleGeneration(uuid, 0, update, [], fence).then(
        () => 'written',
        (error: unknown) => error,
      );
      void settling.finally(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(settled, false, `the settle waits for the claim (it answered ${String(await Promise.race([settling, 'nothing']))})`);
      await other.query('COMMIT');
      assert.ok((await settling) instanceof ClaimLostError);
      assert.equal((await store.listGenerations(uuid))[0]?.status, 'pending');
      // The other way round: a settle that holds the row (its first step, here left in an open
      // transaction) makes a claim wait.
      const current = fence! + 1;
      await other.query('BEGIN');
      await other.query('UPDATE tasks SET claim_token = claim_token WHERE task_uuid = $1 AND claim_token = $2', [uuid.toLowerCase(), current]);
      await other.query(`UPDATE generations SET status = 'success' WHERE task_uuid = $1 AND idx = 1`, [uuid.toLowerCase()]);
      let claimed = false;
      const claiming = store.claimTask(uuid, T0 + 2).finally(() => (claimed = true));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(claimed, false, 'the claim waits for the settle');
      await other.query('COMMIT');
      assert.equal((await claiming)?.fence, current + 1);
      await store.settleGeneration(uuid, 0, update, [], current + 1);
      assert.deepEqual((await store.listGenerations(uuid)).map((g) => g.status), ['success', 'success']);
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end();
    }
  });

  test('three processes opening one fresh database at once migrate it once', async () => {
    const fresh = await freshPostgresDatabase('task_store_race');
    try {
      const stores = await Promise.all([1, 2, 3].map(() => openTaskStore({ databaseUrl: fresh.url, sqliteFile: '', poolSize: 2 })));
      try {
        const uuid = await seedTask(stores[0] as TaskStore, 1);
        assert.equal((await stores[1]?.claimTask(uuid, T0))?.fence, 1);
        assert.equal((await stores[2]?.claimTask(uuid, T0))?.fence, 2);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
      const client = new pg.Client({ connectionString: fresh.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ name: string }>('SELECT name FROM kiln_migrations ORDER BY name');
        assert.deepEqual(rows.map((r) => r.name), ['0001_initial', '0002_claims_and_leases', '0003_key_lifecycle', '0004_tenancy', '0005_delivery_attempts', '0006_upstream_cost', '0007_task_deadlines']);
      } finally {
        await client.end();
      }
    } finally {
      await fresh.drop();
    }
  });
});

/** Brings a database to migration 6 (before tasks had `deadline_at`), as an older Kiln left it. */
async function migrateBefore7(db: Kysely<any>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const { '0007_task_deadlines': _later, ...earlier } = migrations(dialect);
  const migrator = new Migrator({ db, provider: { getMigrations: async () => earlier }, migrationTableName: MIGRATION_TABLE, migrationLockTableName: MIGRATION_LOCK_TABLE });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error;
}

/** Rows an older Kiln stored: unfinished with and without a deadline, and an ended one. */
async function oldTasks(db: Kysely<any>): Promise<{ queued: string; running: string; none: string; ended: string }> {
  const row = (uuid: string, status: string, request: object) => ({
    task_uuid: uuid, api_key_id: 'key-1', task_type: 'imageInference', model: 'klingai:o3@1', engine: 'studio',
    request: JSON.stringify({ taskType: 'imageInference', taskUUID: uuid, ...request }), status, image_count: 1, created_at: T0, updated_at: T0, finished_at: null, expires_at: null,
  });
  const ids = { queued: randomUUID(), running: randomUUID(), none: randomUUID(), ended: randomUUID() };
  await db.insertInto('tasks').values([
    row(ids.queued, 'queued', { deadlineSeconds: 30 }),
    row(ids.running, 'running', { deadlineSeconds: 5 }),
    row(ids.none, 'queued', {}),
    row(ids.ended, 'done', { deadlineSeconds: 30 }),
  ]).execute();
  return ids;
}

/** Old rows written through `old` (at migration 6, then closed), read back through the store `open` migrates to the latest. */
async function upgradeFrom6(old: Kysely<any>, dialect: 'sqlite' | 'postgres', open: () => Promise<TaskStore>): Promise<void> {
  let ids;
  try {
    await migrateBefore7(old, dialect);
    ids = await oldTasks(old);
  } finally {
    await old.destroy();
  }
  const store = await open();
  try {
    await assertBackfilled(store, ids);
  } finally {
    await store.close();
  }
}

async function assertBackfilled(store: TaskStore, ids: { queued: string; running: string; none: string; ended: string }): Promise<void> {
  assert.equal((await store.getTask(ids.queued))?.deadlineAt, T0 + 30_000);
  assert.equal((await store.getTask(ids.running))?.deadlineAt, T0 + 5_000);
  assert.equal((await store.getTask(ids.none))?.deadlineAt, null);
  assert.equal((await store.getTask(ids.ended))?.deadlineAt, null, 'ended tasks need none');
  assert.deepEqual((await store.listOverdueTasks(T0 + 60_000, 10)).map((t) => t.taskUUID), [ids.queued]);
}

test('migration 7 gives the unfinished tasks an older Kiln stored their deadline (SQLite)', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-m7-'));
  try {
    const file = path.join(dir, 'kiln.db');
    await upgradeFrom6(new Kysely<any>({ dialect: new SqliteDialect({ database: new Database(file) }) }), 'sqlite', () => openTaskStore({ sqliteFile: file }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('migration 7 gives the unfinished tasks an older Kiln stored their deadline (PostgreSQL)', { skip: postgresProblem }, async () => {
  const fresh = await freshPostgresDatabase('task_store_m7');
  try {
    const old = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: fresh.url, max: 1 }) }) });
    await upgradeFrom6(old, 'postgres', () => openTaskStore({ databaseUrl: fresh.url, sqliteFile: '' }));
  } finally {
    await fresh.drop();
  }
});

test('a PostgreSQL that accepts but never answers fails the open within the connect timeout', async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as net.AddressInfo;
  const started = Date.now();
  try {
    await assert.rejects(
      openTaskStore({ databaseUrl: `postgres://kiln:s3cret@127.0.0.1:${port}/kiln`, sqliteFile: '', connectTimeoutMs: 500 }),
      (error: unknown) => error instanceof Error && error.message.includes(`postgres://kiln:***@127.0.0.1:${port}/kiln`) && !error.message.includes('s3cret'),
    );
    assert.ok(Date.now() - started < 3_000);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

test('an unreachable PostgreSQL fails the open quickly, naming the URL without its password', async () => {
  const started = Date.now();
  await assert.rejects(
    openTaskStore({ databaseUrl: 'postgresql://kiln:s3cret@127.0.0.1:1/kiln', sqliteFile: '' }),
    (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /postgresql:\/\/kiln:\*\*\*@127\.0\.0\.1:1\/kiln/);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    },
  );
  assert.ok(Date.now() - started < 6_000);
});
