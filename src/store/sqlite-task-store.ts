import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { fromDelivery, MIGRATIONS, toDelivery, toGeneration, toImage, toTask, type Schema } from './sqlite-schema.ts';
import {
  TaskConflictError,
  type DeliveryRecord,
  type DeliveryUpdate,
  type ApiKeyRecord,
  type GenerationRecord,
  type GenerationUpdate,
  type ImageRecord,
  type TaskRecord,
  type TaskStatus,
  type TaskStore,
} from './task-store.ts';

/** `TaskStore` on a SQLite file (WAL mode) through kysely. */
export class SqliteTaskStore implements TaskStore {
  private readonly sqlite: Database.Database;
  private readonly db: Kysely<Schema>;

  constructor(file: string) {
    this.sqlite = new Database(file);
    this.sqlite.pragma('journal_mode = WAL');
    this.sqlite.pragma('synchronous = NORMAL');
    this.sqlite.pragma('foreign_keys = ON');
    this.sqlite.pragma('busy_timeout = 5000');
    for (const statement of MIGRATIONS) this.sqlite.exec(statement);
    this.db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: this.sqlite }) });
  }

  async findApiKeyByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.db.selectFrom('api_keys').selectAll().where('hash', '=', hash).executeTakeFirst();
    return r && { id: r.id, hash: r.hash, label: r.label, webhookSecret: r.webhook_secret, createdAt: r.created_at };
  }

  async findApiKeyById(id: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return r && { id: r.id, hash: r.hash, label: r.label, webhookSecret: r.webhook_secret, createdAt: r.created_at };
  }

  async insertApiKey(k: ApiKeyRecord): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({ id: k.id, hash: k.hash, label: k.label, webhook_secret: k.webhookSecret, created_at: k.createdAt })
      .onConflict((oc) => oc.column('hash').doNothing())
      .execute();
  }

  async countApiKeys(): Promise<number> {
    const r = await this.db.selectFrom('api_keys').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async insertTask(t: TaskRecord, generations: readonly GenerationRecord[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('tasks')
        .values({
          task_uuid: t.taskUUID,
          api_key_id: t.apiKeyId,
          task_type: t.taskType,
          model: t.model,
          engine: t.engine,
          request: t.request,
          status: t.status,
          image_count: t.imageCount,
          created_at: t.createdAt,
          updated_at: t.updatedAt,
          finished_at: t.finishedAt,
          expires_at: t.expiresAt,
        })
        .onConflict((oc) => oc.column('task_uuid').doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) throw new TaskConflictError(t.taskUUID);
      if (generations.length === 0) return;
      await trx
        .insertInto('generations')
        .values(
          generations.map((g) => ({
            task_uuid: g.taskUUID,
            idx: g.index,
            seed: g.seed,
            series_index: g.seriesIndex,
            status: g.status,
            image_uuid: g.imageUUID,
            error: g.error,
            cost: g.cost,
            nsfw: g.nsfw === null ? null : Number(g.nsfw),
            finished_at: g.finishedAt,
            engine_state: null,
          })),
        )
        .execute();
    });
  }

  async getTask(taskUUID: string): Promise<TaskRecord | undefined> {
    const r = await this.db.selectFrom('tasks').selectAll().where('task_uuid', '=', taskUUID).executeTakeFirst();
    return r && toTask(r);
  }

  async listGenerations(taskUUID: string): Promise<GenerationRecord[]> {
    const rows = await this.db.selectFrom('generations').selectAll().where('task_uuid', '=', taskUUID).orderBy('idx').execute();
    return rows.map(toGeneration);
  }

  async setTaskStatus(taskUUID: string, status: TaskStatus, at: number, expiresAt?: number | null): Promise<void> {
    const ended = status === 'done' || status === 'failed';
    if (expiresAt !== undefined && expiresAt !== null) {
      // Images delivered inline (not by URL) exist for getResponse, so they live as long as the task record.
      await this.db
        .updateTable('images')
        .set({ expires_at: expiresAt })
        .where('task_uuid', '=', taskUUID)
        .where('kind', '=', 'generated')
        .where('servable', '=', 0)
        .execute();
    }
    await this.db
      .updateTable('tasks')
      .set({
        status,
        updated_at: at,
        ...(ended ? { finished_at: at } : {}),
        ...(expiresAt === undefined ? {} : { expires_at: expiresAt }),
      })
      .where('task_uuid', '=', taskUUID)
      .execute();
  }

  async settleGeneration(
    taskUUID: string,
    index: number,
    u: GenerationUpdate,
    deliveries: readonly DeliveryRecord[],
  ): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('generations')
        .set({
          status: u.status,
          finished_at: u.finishedAt,
          ...(u.imageUUID === undefined ? {} : { image_uuid: u.imageUUID }),
          ...(u.error === undefined ? {} : { error: u.error }),
          ...(u.cost === undefined ? {} : { cost: u.cost }),
          ...(u.nsfw === undefined ? {} : { nsfw: Number(u.nsfw) }),
          ...(u.seed === undefined ? {} : { seed: u.seed }),
        })
        .where('task_uuid', '=', taskUUID)
        .where('idx', '=', index)
        .execute();
      if (deliveries.length > 0) await trx.insertInto('deliveries').values(deliveries.map(fromDelivery)).execute();
    });
  }

  async insertDeliveries(deliveries: readonly DeliveryRecord[]): Promise<void> {
    if (deliveries.length === 0) return;
    await this.db.insertInto('deliveries').values(deliveries.map(fromDelivery)).execute();
  }

  async updateDelivery(id: string, u: DeliveryUpdate, follow: readonly DeliveryRecord[] = []): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('deliveries')
        .set({ status: u.status, attempts: u.attempts, next_attempt_at: u.nextAttemptAt, last_error: u.lastError })
        .where('id', '=', id)
        .execute();
      if (follow.length > 0) await trx.insertInto('deliveries').values(follow.map(fromDelivery)).execute();
    });
  }

  async listPendingDeliveries(): Promise<DeliveryRecord[]> {
    const rows = await this.db.selectFrom('deliveries').selectAll().where('status', '=', 'pending').orderBy('next_attempt_at').execute();
    return rows.map(toDelivery);
  }

  async deleteSettledDeliveries(before: number): Promise<number> {
    const r = await this.db
      .deleteFrom('deliveries')
      .where('status', 'in', ['done', 'failed'])
      .where('created_at', '<', before)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async listFailedUploads(taskUUID: string): Promise<DeliveryRecord[]> {
    const rows = await this.db
      .selectFrom('deliveries')
      .selectAll()
      .where('task_uuid', '=', taskUUID)
      .where('kind', '=', 'upload')
      .where('status', '=', 'failed')
      .orderBy('created_at')
      .execute();
    return rows.map(toDelivery);
  }

  async loadEngineState(taskUUID: string, index: number): Promise<string | undefined> {
    const r = await this.db
      .selectFrom('generations')
      .select('engine_state')
      .where('task_uuid', '=', taskUUID)
      .where('idx', '=', index)
      .executeTakeFirst();
    return r?.engine_state ?? undefined;
  }

  async saveEngineState(taskUUID: string, index: number, value: string): Promise<void> {
    await this.db.updateTable('generations').set({ engine_state: value }).where('task_uuid', '=', taskUUID).where('idx', '=', index).execute();
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

  async deleteExpiredTasks(now: number): Promise<number> {
    const r = await this.db.deleteFrom('tasks').where('expires_at', 'is not', null).where('expires_at', '<=', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async insertImage(i: ImageRecord): Promise<void> {
    await this.db
      .insertInto('images')
      .values({
        image_uuid: i.imageUUID,
        kind: i.kind,
        task_uuid: i.taskUUID,
        api_key_id: i.apiKeyId,
        format: i.format,
        width: i.width,
        height: i.height,
        bytes: i.bytes,
        object_key: i.objectKey,
        created_at: i.createdAt,
        expires_at: i.expiresAt,
        servable: Number(i.servable),
      })
      .execute();
  }

  async getImage(imageUUID: string): Promise<ImageRecord | undefined> {
    const r = await this.db.selectFrom('images').selectAll().where('image_uuid', '=', imageUUID).executeTakeFirst();
    return r && toImage(r);
  }

  async touchImage(imageUUID: string, expiresAt: number): Promise<void> {
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
      .where('expires_at', 'is not', null)
      .where('expires_at', '<=', now)
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
      .orderBy('expires_at')
      .limit(limit)
      .execute();
    return rows.map(toImage);
  }

  async deleteImage(imageUUID: string): Promise<void> {
    await this.db.deleteFrom('images').where('image_uuid', '=', imageUUID).execute();
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
