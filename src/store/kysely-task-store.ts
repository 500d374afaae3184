import { SqliteAdapter, sql, type Kysely, type Transaction } from 'kysely';
import {
  fromDelivery,
  fromGeneration,
  fromImage,
  fromTask,
  taskKey,
  toApiKey,
  toDelivery,
  toGeneration,
  toImage,
  toTask,
  type StoreSchema,
} from './schema.ts';
import {
  ClaimLostError,
  TaskConflictError,
  type ApiKeyPatch,
  type ApiKeyRecord,
  type DeliveryAttempt,
  type DeliveryRecord,
  type DeliveryUpdate,
  type GenerationRecord,
  type GenerationUpdate,
  type ImageRecord,
  type OperatorCounts,
  type PoolUse,
  type TaskRecord,
  type TaskStatus,
  type TaskStore,
  type ClaimedTask,
} from './task-store.ts';

import { KyselyTenancyStore } from './kysely-tenancy-store.ts';
import type { TenancyStore } from './tenancy-store.ts';

type Db = Kysely<StoreSchema> | Transaction<StoreSchema>;

/**
 * `TaskStore` on SQLite or PostgreSQL through kysely: every statement is written once and runs
 * on both (built by `openTaskStore`, which also migrates the schema).
 *
 * Fenced writes start their transaction by re-writing the task row where its claim token still
 * matches. On PostgreSQL that row lock orders them against `claimTask` (a claim committed
 * meanwhile makes the fence match no row); on SQLite it takes the write lock before anything is
 * read, so a transaction never has to upgrade a stale read snapshot.
 */
export class KyselyTaskStore implements TaskStore {
  /** SQLite runs every statement under one write lock, which lets some fenced writes skip their transaction. */
  private readonly sqlite: boolean;
  private tenancyStore: TenancyStore | undefined;

  constructor(
    private readonly db: Kysely<StoreSchema>,
    /** Reads the pool's use (PostgreSQL only). */
    private readonly readPool?: () => PoolUse,
    /** Runs before the connection closes (SQLite: the checkpoint thread's last checkpoint). */
    private readonly beforeClose?: () => Promise<void>,
  ) {
    this.sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  }

  async findApiKeyByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.db.selectFrom('api_keys').selectAll().where('hash', '=', hash).executeTakeFirst();
    return r && toApiKey(r);
  }

  async findApiKeyById(id: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toApiKey(r);
  }

  async insertApiKey(k: ApiKeyRecord): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: k.id,
        hash: k.hash,
        label: k.label,
        webhook_secret: k.webhookSecret,
        created_at: k.createdAt,
        hash_kind: k.hashKind ?? 'sha256',
        revoked_at: k.revokedAt ?? null,
        source: k.source ?? null,
        hint: k.hint ?? null,
        previous_webhook_secret: k.previousWebhookSecret ?? null,
        previous_webhook_secret_until: k.previousWebhookSecretUntil ?? null,
      })
      .onConflict((oc) => oc.column('hash').doNothing())
      .execute();
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const rows = await this.db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toApiKey);
  }

  async revokeApiKey(id: string, at: number): Promise<boolean> {
    const result = await this.db.updateTable('api_keys').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async updateApiKey(id: string, patch: ApiKeyPatch): Promise<boolean> {
    const set = {
      ...(patch.hash === undefined ? {} : { hash: patch.hash }),
      ...(patch.hashKind === undefined ? {} : { hash_kind: patch.hashKind }),
      ...(patch.webhookSecret === undefined ? {} : { webhook_secret: patch.webhookSecret }),
      ...(patch.hint === undefined ? {} : { hint: patch.hint }),
      ...(patch.previousWebhookSecret === undefined ? {} : { previous_webhook_secret: patch.previousWebhookSecret }),
      ...(patch.previousWebhookSecretUntil === undefined ? {} : { previous_webhook_secret_until: patch.previousWebhookSecretUntil }),
    };
    if (Object.keys(set).length === 0) return (await this.findApiKeyById(id)) !== undefined;
    const result = await this.db.updateTable('api_keys').set(set).where('id', '=', id).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async countApiKeys(): Promise<number> {
    const r = await this.db.selectFrom('api_keys').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async insertTask(t: TaskRecord, generations: readonly GenerationRecord[]): Promise<void> {
    if (!this.sqlite && generations.length > 0) {
      // PostgreSQL: one statement instead of a four-round-trip transaction. The generations are
      // inserted only when the task's row was (a data-modifying WITH is atomic), from one JSON
      // parameter shaped as the table's rows.
      const inserted = await this.db
        .with('t', (db) => db.insertInto('tasks').values(fromTask(t)).onConflict((oc) => oc.column('task_uuid').doNothing()).returning('task_uuid'))
        .insertInto('generations')
        .expression(
          sql`select g.* from json_populate_recordset(null::generations, ${JSON.stringify(generations.map(fromGeneration))}) as g where exists (select 1 from t)`,
        )
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) throw new TaskConflictError(taskKey(t.taskUUID));
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('tasks')
        .values(fromTask(t))
        .onConflict((oc) => oc.column('task_uuid').doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) throw new TaskConflictError(taskKey(t.taskUUID));
      if (generations.length > 0) await trx.insertInto('generations').values(generations.map(fromGeneration)).execute();
    });
  }

  async getTask(taskUUID: string): Promise<TaskRecord | undefined> {
    const r = await this.db.selectFrom('tasks').selectAll().where('task_uuid', '=', taskKey(taskUUID)).executeTakeFirst();
    return r && toTask(r);
  }

  async imagesAhead(createdAt: number): Promise<number> {
    // Both read through indexes: tasks_status (status, created_at), and generations by task_uuid.
    const [queued, running] = await Promise.all([
      this.db
        .selectFrom('tasks')
        .select((eb) => eb.fn.sum<number>('image_count').as('n'))
        .where('status', '=', 'queued')
        .where('created_at', '<', createdAt)
        .executeTakeFirst(),
      this.db
        .selectFrom('tasks')
        .innerJoin('generations', 'generations.task_uuid', 'tasks.task_uuid')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('tasks.status', '=', 'running')
        .where('generations.status', '=', 'pending')
        .executeTakeFirst(),
    ]);
    return Number(queued?.n ?? 0) + Number(running?.n ?? 0);
  }

  async listGenerations(taskUUID: string): Promise<GenerationRecord[]> {
    const rows = await this.db
      .selectFrom('generations')
      .selectAll()
      .where('task_uuid', '=', taskKey(taskUUID))
      .orderBy('idx')
      .execute();
    return rows.map(toGeneration);
  }

  async setTaskStatus(taskUUID: string, status: TaskStatus, at: number, expiresAt?: number | null, fence?: number, inlineImages = true): Promise<void> {
    const key = taskKey(taskUUID);
    const ended = status === 'done' || status === 'failed';
    const statusUpdate = (db: Db) =>
      db
        .updateTable('tasks')
        .set({
          status,
          updated_at: at,
          ...(ended ? { finished_at: at } : {}),
          ...(expiresAt === undefined ? {} : { expires_at: expiresAt }),
        })
        .where('task_uuid', '=', key)
        .$if(fence !== undefined, (q) => q.where('claim_token', '=', fence as number));
    const lost = (updatedRows: bigint | number | undefined): void => {
      if (fence !== undefined && Number(updatedRows ?? 0) === 0) throw new ClaimLostError(key);
    };
    if (expiresAt === undefined || expiresAt === null || !inlineImages) {
      // One statement: atomic without a transaction (two round trips fewer on PostgreSQL).
      lost((await statusUpdate(this.db).executeTakeFirst()).numUpdatedRows);
      return;
    }
    if (!this.sqlite) {
      // On PostgreSQL the task's row and its inline images are one statement (a data-modifying
      // WITH: the images are kept only when the task's row, fence included, was written), one
      // round trip instead of four.
      const written = await this.db
        .with('status', () => statusUpdate(this.db).returning('task_uuid'))
        .with('kept', (db) =>
          db
            .updateTable('images')
            .set({ expires_at: expiresAt })
            .where('task_uuid', '=', key)
            .where('kind', '=', 'generated')
            .where('servable', '=', 0)
            .where(({ exists, selectFrom }) => exists(selectFrom('status').select('status.task_uuid')))
            .returning('image_uuid'),
        )
        .selectFrom('status')
        .select('status.task_uuid')
        .execute();
      lost(written.length);
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      lost((await statusUpdate(trx).executeTakeFirst()).numUpdatedRows);
      await keepInlineImages(trx, key, expiresAt);
    });
  }

  cancelTask(
    taskUUID: string,
    at: number,
    expiresAt: number,
    errorFor: (indexes: readonly number[]) => string,
    webhookFor?: (error: string) => DeliveryRecord,
    options: { onlyQueued?: boolean } = {},
  ): Promise<{ cancelled: number[]; finished: string[] } | undefined> {
    const key = taskKey(taskUUID);
    return this.db.transaction().execute(async (trx) => {
      // The claim first: it locks the task's row, so a run's fenced write (which takes the same
      // lock) waits for this transaction and then finds its claim gone.
      const claimed = await trx
        .updateTable('tasks')
        .set((eb) => ({ claim_token: eb('claim_token', '+', 1), updated_at: at }))
        .where('task_uuid', '=', key)
        .where('status', 'in', options.onlyQueued ? ['queued'] : ['queued', 'running'])
        .returning('claim_token')
        .executeTakeFirst();
      if (!claimed) return undefined;
      const pending = await trx.selectFrom('generations').select('idx').where('task_uuid', '=', key).where('status', '=', 'pending').orderBy('idx').execute();
      const cancelled = pending.map((g) => g.idx);
      if (cancelled.length > 0) {
        const error = errorFor(cancelled);
        await trx
          .updateTable('generations')
          .set({ status: 'error', error, finished_at: at })
          .where('task_uuid', '=', key)
          .where('status', '=', 'pending')
          .execute();
        const webhook = webhookFor?.(error);
        if (webhook) await trx.insertInto('deliveries').values(fromDelivery(webhook)).execute();
      }
      const finished = await trx
        .selectFrom('generations')
        .select('image_uuid')
        .where('task_uuid', '=', key)
        .where('status', '=', 'success')
        .orderBy('idx')
        .execute();
      await trx
        .updateTable('tasks')
        .set({ status: finished.length > 0 ? 'done' : 'failed', updated_at: at, finished_at: at, expires_at: expiresAt })
        .where('task_uuid', '=', key)
        .execute();
      await keepInlineImages(trx, key, expiresAt);
      return { cancelled, finished: finished.flatMap((g) => (g.image_uuid ? [g.image_uuid] : [])) };
    });
  }

  async claimTask(taskUUID: string, at: number): Promise<ClaimedTask | undefined> {
    const r = await this.db
      .updateTable('tasks')
      .set((eb) => ({ claim_token: eb('claim_token', '+', 1), status: 'running', claimed_at: at, updated_at: at }))
      .where('task_uuid', '=', taskKey(taskUUID))
      .where('status', 'in', ['queued', 'running'])
      .returningAll()
      .executeTakeFirst();
    return r && { task: toTask(r), fence: r.claim_token };
  }

  async settleGeneration(
    taskUUID: string,
    index: number,
    u: GenerationUpdate,
    deliveries: readonly DeliveryRecord[],
    fence?: number,
  ): Promise<void> {
    const key = taskKey(taskUUID);
    if (fence !== undefined && deliveries.length === 0) {
      // One statement, fence check included, no transaction. SQLite runs it under its write lock.
      // On PostgreSQL it starts by re-writing the task's row where the token still matches (the
      // row lock of the transaction below, as a data-modifying WITH): a claim being committed is
      // waited for and then seen (the row no longer matches), and a later claim waits for it.
      const updated = this.sqlite
        ? await this.db
            .updateTable('generations')
            .set(generationUpdate(u))
            .where('task_uuid', '=', key)
            .where('idx', '=', index)
            .where('status', '=', 'pending')
            .where(({ exists, selectFrom }) =>
              exists(selectFrom('tasks').select('tasks.task_uuid').where('tasks.task_uuid', '=', key).where('tasks.claim_token', '=', fence)),
            )
            .executeTakeFirst()
        : await this.db
            .with('fence', (db) =>
              db
                .updateTable('tasks')
                .set((eb) => ({ claim_token: eb.ref('claim_token') }))
                .where('task_uuid', '=', key)
                .where('claim_token', '=', fence)
                .returning('task_uuid'),
            )
            .updateTable('generations')
            .set(generationUpdate(u))
            .where('task_uuid', '=', key)
            .where('idx', '=', index)
            .where('status', '=', 'pending')
            .where(({ exists, selectFrom }) => exists(selectFrom('fence').select('fence.task_uuid')))
            .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0) throw new ClaimLostError(key);
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      if (fence !== undefined) await holdFence(trx, key, fence);
      const updated = await trx
        .updateTable('generations')
        .set(generationUpdate(u))
        .where('task_uuid', '=', key)
        .where('idx', '=', index)
        // A fenced run settles a generation once: a second outcome would announce a second image.
        .$if(fence !== undefined, (q) => q.where('status', '=', 'pending'))
        .executeTakeFirst();
      if (fence !== undefined && Number(updated.numUpdatedRows) === 0) throw new ClaimLostError(key);
      if (deliveries.length > 0) await trx.insertInto('deliveries').values(deliveries.map(fromDelivery)).execute();
    });
  }

  async loadEngineState(taskUUID: string, index: number): Promise<string | undefined> {
    const r = await this.db
      .selectFrom('generations')
      .select('engine_state')
      .where('task_uuid', '=', taskKey(taskUUID))
      .where('idx', '=', index)
      .executeTakeFirst();
    return r?.engine_state ?? undefined;
  }

  async saveEngineState(taskUUID: string, index: number, value: string, fence?: number): Promise<void> {
    const key = taskKey(taskUUID);
    const save = (db: Db) =>
      db.updateTable('generations').set({ engine_state: value }).where('task_uuid', '=', key).where('idx', '=', index).execute();
    if (fence === undefined) {
      await save(this.db);
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      await holdFence(trx, key, fence);
      await save(trx);
    });
  }

  async deleteTask(taskUUID: string): Promise<void> {
    const key = taskKey(taskUUID);
    // Task row first, as every fenced write locks it first: one lock order, no deadlock.
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('tasks').where('task_uuid', '=', key).execute();
      await trx.deleteFrom('generations').where('task_uuid', '=', key).execute();
    });
  }

  async listUnfinishedTasks(): Promise<TaskRecord[]> {
    const rows = await this.db
      .selectFrom('tasks')
      .selectAll()
      .where('status', 'in', ['queued', 'running'])
      .orderBy('created_at')
      .execute();
    return rows.map(toTask);
  }

  async listOverdueTasks(before: number, limit: number, status: 'queued' | 'running' = 'queued'): Promise<TaskRecord[]> {
    const rows = await this.db
      .selectFrom('tasks')
      .selectAll()
      .where('status', '=', status)
      // Spelled out, so that both planners pick the partial index on (status, deadline_at).
      .where('deadline_at', 'is not', null)
      .where('deadline_at', '<=', before)
      .orderBy('deadline_at')
      .limit(limit)
      .execute();
    return rows.map(toTask);
  }

  async deleteExpiredTasks(now: number): Promise<number> {
    // Generations go with their task (ON DELETE CASCADE).
    const r = await this.db.deleteFrom('tasks').where('expires_at', 'is not', null).where('expires_at', '<=', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async insertDeliveries(deliveries: readonly DeliveryRecord[]): Promise<void> {
    if (deliveries.length === 0) return;
    await this.db.insertInto('deliveries').values(deliveries.map(fromDelivery)).execute();
  }

  async updateDelivery(id: string, u: DeliveryUpdate, follow: readonly DeliveryRecord[] = [], owner?: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      let update = trx
        .updateTable('deliveries')
        .set({
          status: u.status,
          attempts: u.attempts,
          next_attempt_at: u.nextAttemptAt,
          last_error: u.lastError,
          lease_owner: null,
          lease_until: null,
          ...(u.createdAt === undefined ? {} : { created_at: u.createdAt }),
        })
        .where('id', '=', id);
      if (owner !== undefined) update = update.where('status', '=', 'pending').where('lease_owner', '=', owner);
      const updated = await update.executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0) return false;
      if (follow.length > 0) await trx.insertInto('deliveries').values(follow.map(fromDelivery)).execute();
      return true;
    });
  }

  async listPendingDeliveries(): Promise<DeliveryRecord[]> {
    const rows = await this.db.selectFrom('deliveries').selectAll().where('status', '=', 'pending').orderBy('next_attempt_at').execute();
    return rows.map(toDelivery);
  }

  async listDueDeliveries(now: number, limit: number): Promise<DeliveryRecord[]> {
    const rows = await this.db
      .selectFrom('deliveries')
      .selectAll()
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('next_attempt_at')
      .limit(limit)
      .execute();
    return rows.map(toDelivery);
  }

  async claimDelivery(id: string, owner: string, leaseUntil: number, now: number): Promise<DeliveryRecord | undefined> {
    // One conditional UPDATE: on PostgreSQL a concurrent claimer waits for the row, then
    // re-checks the condition against the winner's lease and updates nothing.
    const r = await this.db
      .updateTable('deliveries')
      .set({ lease_owner: owner, lease_until: leaseUntil })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now), eb('lease_owner', '=', owner)]))
      .returningAll()
      .executeTakeFirst();
    return r && toDelivery(r);
  }

  async deleteSettledDeliveries(before: number): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      // Their attempt log goes with them (found through deliveries_settled, then the log's key).
      await trx
        .deleteFrom('delivery_attempts')
        .where('delivery_id', 'in', (eb) =>
          eb.selectFrom('deliveries').select('id').where('status', 'in', ['done', 'failed']).where('created_at', '<', before),
        )
        .execute();
      const r = await trx.deleteFrom('deliveries').where('status', 'in', ['done', 'failed']).where('created_at', '<', before).executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }

  async recordDeliveryAttempt(a: Omit<DeliveryAttempt, 'attempt'>): Promise<void> {
    // Numbered after the attempts already logged (a redelivery continues the count), in one
    // statement; the delivery's lease keeps two processes from logging at once.
    await this.db
      .insertInto('delivery_attempts')
      .columns(['delivery_id', 'attempt', 'at', 'http_status', 'error', 'latency_ms'])
      .expression((eb) =>
        eb
          .selectFrom('delivery_attempts')
          .select([
            eb.val(a.deliveryId).as('delivery_id'),
            sql<number>`coalesce(max(attempt), 0) + 1`.as('attempt'),
            eb.val(a.at).as('at'),
            eb.val(a.httpStatus).as('http_status'),
            eb.val(a.error).as('error'),
            eb.val(a.latencyMs).as('latency_ms'),
          ])
          .where('delivery_id', '=', a.deliveryId),
      )
      .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doNothing())
      .execute();
  }

  async listTaskDeliveries(taskUUID: string): Promise<{ delivery: DeliveryRecord; attempts: DeliveryAttempt[] }[]> {
    const deliveries = (await this.db.selectFrom('deliveries').selectAll().where('task_uuid', '=', taskKey(taskUUID)).orderBy('created_at').orderBy('id').execute()).map(toDelivery);
    if (deliveries.length === 0) return [];
    const rows = await this.db
      .selectFrom('delivery_attempts')
      .selectAll()
      .where('delivery_id', 'in', deliveries.map((d) => d.id))
      .orderBy('delivery_id')
      .orderBy('attempt')
      .execute();
    return deliveries.map((delivery) => ({
      delivery,
      attempts: rows
        .filter((r) => r.delivery_id === delivery.id)
        .map((r) => ({ deliveryId: r.delivery_id, attempt: r.attempt, at: Number(r.at), httpStatus: r.http_status, error: r.error, latencyMs: r.latency_ms })),
    }));
  }

  async getDelivery(id: string): Promise<DeliveryRecord | undefined> {
    const r = await this.db.selectFrom('deliveries').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toDelivery(r);
  }

  async listFailedUploads(taskUUID: string): Promise<DeliveryRecord[]> {
    const rows = await this.db
      .selectFrom('deliveries')
      .selectAll()
      .where('task_uuid', '=', taskKey(taskUUID))
      .where('kind', '=', 'upload')
      .where('status', '=', 'failed')
      .orderBy('created_at')
      .execute();
    return rows.map(toDelivery);
  }

  async acquireLease(name: string, owner: string, until: number, now: number): Promise<boolean> {
    // Insert, or take over an expired (or renew one's own) lease, in one statement; a row comes
    // back only when `owner` holds the lease afterwards.
    const r = await this.db
      .insertInto('leases')
      .values({ name, owner, until })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet((eb) => ({ owner: eb.ref('excluded.owner'), until: eb.ref('excluded.until') }))
          .where((eb) => eb.or([eb('leases.until', '<', now), eb('leases.owner', '=', owner)])),
      )
      .returning('owner')
      .executeTakeFirst();
    return r?.owner === owner;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.db.deleteFrom('leases').where('name', '=', name).where('owner', '=', owner).execute();
  }

  async insertImage(i: ImageRecord): Promise<void> {
    await this.db.insertInto('images').values(fromImage(i)).execute();
  }

  async getImage(imageUUID: string): Promise<ImageRecord | undefined> {
    const r = await this.db.selectFrom('images').selectAll().where('image_uuid', '=', imageUUID).executeTakeFirst();
    return r && toImage(r);
  }

  async findUpload(taskUUID: string): Promise<ImageRecord | undefined> {
    const r = await this.db
      .selectFrom('images')
      .selectAll()
      .where('task_uuid', '=', taskKey(taskUUID))
      .where('kind', '=', 'upload')
      .orderBy('created_at')
      .orderBy('image_uuid')
      .limit(1)
      .executeTakeFirst();
    return r && toImage(r);
  }

  async touchImage(imageUUID: string, expiresAt: number): Promise<void> {
    // Only ever later: a touch never shortens a life, and an image without expiry keeps none.
    await this.db
      .updateTable('images')
      .set({ expires_at: expiresAt })
      .where('image_uuid', '=', imageUUID)
      .where('expires_at', '<', expiresAt)
      .execute();
  }

  async listExpiredImages(now: number, limit: number): Promise<ImageRecord[]> {
    const rows = await this.db
      .selectFrom('images')
      .selectAll()
      .where('images.expires_at', 'is not', null)
      .where('images.expires_at', '<=', now)
      // An upload still retrying needs the bytes even after the URL expired.
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('deliveries')
              .select('deliveries.id')
              .whereRef('deliveries.image_uuid', '=', 'images.image_uuid')
              .where('deliveries.kind', '=', 'upload')
              .where('deliveries.status', '=', 'pending'),
          ),
        ),
      )
      .orderBy('images.expires_at')
      .limit(limit)
      .execute();
    return rows.map(toImage);
  }

  async deleteImage(imageUUID: string, expiredBy?: number): Promise<boolean> {
    let query = this.db.deleteFrom('images').where('image_uuid', '=', imageUUID);
    if (expiredBy !== undefined) query = query.where('expires_at', 'is not', null).where('expires_at', '<=', expiredBy);
    const r = await query.executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async ping(): Promise<void> {
    await sql`SELECT 1`.execute(this.db);
  }

  async operatorCounts(): Promise<OperatorCounts> {
    // Both read through their status indexes (tasks_status, deliveries_pending).
    const [tasks, deliveries] = await Promise.all([
      this.db
        .selectFrom('tasks')
        .select((eb) => ['status', eb.fn.sum<number>('image_count').as('n')])
        .where('status', 'in', ['queued', 'running'])
        .groupBy('status')
        .execute(),
      this.db
        .selectFrom('deliveries')
        .select((eb) => ['kind', eb.fn.countAll<number>().as('n')])
        .where('status', '=', 'pending')
        .groupBy('kind')
        .execute(),
    ]);
    const images = (status: TaskStatus): number => Number(tasks.find((row) => row.status === status)?.n ?? 0);
    return {
      queuedImages: images('queued'),
      runningImages: images('running'),
      pendingDeliveries: Object.fromEntries(deliveries.map((row) => [row.kind, Number(row.n)])),
    };
  }

  poolUse(): PoolUse | undefined {
    return this.readPool?.();
  }

  tenancy(): TenancyStore {
    this.tenancyStore ??= new KyselyTenancyStore(this.db);
    return this.tenancyStore;
  }

  async close(): Promise<void> {
    await this.beforeClose?.();
    await this.db.destroy();
  }
}

/** The columns a generation's outcome sets. */
function generationUpdate(u: GenerationUpdate) {
  return {
    status: u.status,
    finished_at: u.finishedAt,
    ...(u.imageUUID === undefined ? {} : { image_uuid: u.imageUUID }),
    ...(u.error === undefined ? {} : { error: u.error }),
    ...(u.cost === undefined ? {} : { cost: u.cost }),
    ...(u.upstreamCost === undefined ? {} : { upstream_cost: u.upstreamCost }),
    ...(u.nsfw === undefined ? {} : { nsfw: Number(u.nsfw) }),
    ...(u.seed === undefined ? {} : { seed: u.seed }),
  };
}

/**
 * Re-writes the task row where its claim token is still `fence` (a no-op write that locks the
 * row on PostgreSQL); no such row means another run claimed the task: `ClaimLostError`, and the
 * surrounding transaction rolls back.
 */
async function holdFence(trx: Transaction<StoreSchema>, key: string, fence: number): Promise<void> {
  const held = await trx
    .updateTable('tasks')
    .set((eb) => ({ claim_token: eb.ref('claim_token') }))
    .where('task_uuid', '=', key)
    .where('claim_token', '=', fence)
    .executeTakeFirst();
  if (Number(held.numUpdatedRows) === 0) throw new ClaimLostError(key);
}

/**
 * Images delivered inline (not by URL) exist for getResponse, so they live as long as the task
 * record (`setTaskStatus` on PostgreSQL writes the same inside its one statement).
 */
async function keepInlineImages(trx: Db, key: string, expiresAt: number): Promise<void> {
  await trx.updateTable('images').set({ expires_at: expiresAt }).where('task_uuid', '=', key).where('kind', '=', 'generated').where('servable', '=', 0).execute();
}
