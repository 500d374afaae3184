import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, type Generated, type Selectable } from 'kysely';
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

interface ApiKeysTable {
  id: string;
  hash: string;
  label: string;
  webhook_secret: string | null;
  created_at: number;
}
interface TasksTable {
  task_uuid: string;
  api_key_id: string;
  task_type: string;
  model: string;
  engine: string;
  request: string;
  status: TaskStatus;
  image_count: number;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
  expires_at: number | null;
}
interface GenerationsTable {
  task_uuid: string;
  idx: number;
  seed: number;
  series_index: number | null;
  status: GenerationRecord['status'];
  image_uuid: string | null;
  error: string | null;
  cost: number | null;
  nsfw: number | null;
  finished_at: number | null;
  engine_state: string | null;
}
interface ImagesTable {
  image_uuid: string;
  kind: ImageRecord['kind'];
  task_uuid: string | null;
  api_key_id: string | null;
  format: ImageRecord['format'];
  width: number;
  height: number;
  bytes: number;
  object_key: string;
  created_at: number;
  expires_at: number | null;
  servable: number;
  seq: Generated<number>;
}
interface DeliveriesTable {
  id: string;
  task_uuid: string;
  api_key_id: string;
  kind: DeliveryRecord['kind'];
  url: string;
  image_uuid: string | null;
  body: string | null;
  object_key: string | null;
  notify_url: string | null;
  status: DeliveryRecord['status'];
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
}
interface Schema {
  deliveries: DeliveriesTable;
  api_keys: ApiKeysTable;
  tasks: TasksTable;
  generations: GenerationsTable;
  images: ImagesTable;
}

const MIGRATIONS = [
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
  // Deliveries outlive their task record on purpose: a webhook may still be retrying.
  `CREATE TABLE IF NOT EXISTS deliveries (
     id TEXT PRIMARY KEY, task_uuid TEXT NOT NULL COLLATE NOCASE, api_key_id TEXT NOT NULL, kind TEXT NOT NULL, url TEXT NOT NULL,
     image_uuid TEXT, body TEXT, object_key TEXT, notify_url TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL, last_error TEXT, created_at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(status, next_attempt_at)`,
  `CREATE INDEX IF NOT EXISTS deliveries_task ON deliveries(task_uuid)`,
];

const toDelivery = (r: Selectable<DeliveriesTable>): DeliveryRecord => ({
  id: r.id,
  taskUUID: r.task_uuid,
  apiKeyId: r.api_key_id,
  kind: r.kind,
  url: r.url,
  imageUUID: r.image_uuid,
  body: r.body,
  objectKey: r.object_key,
  notifyUrl: r.notify_url,
  status: r.status,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  createdAt: r.created_at,
});
const fromDelivery = (d: DeliveryRecord): DeliveriesTable => ({
  id: d.id,
  task_uuid: d.taskUUID,
  api_key_id: d.apiKeyId,
  kind: d.kind,
  url: d.url,
  image_uuid: d.imageUUID,
  body: d.body,
  object_key: d.objectKey,
  notify_url: d.notifyUrl,
  status: d.status,
  attempts: d.attempts,
  next_attempt_at: d.nextAttemptAt,
  last_error: d.lastError,
  created_at: d.createdAt,
});

const toTask = (r: Selectable<TasksTable>): TaskRecord => ({
  taskUUID: r.task_uuid,
  apiKeyId: r.api_key_id,
  taskType: r.task_type,
  model: r.model,
  engine: r.engine,
  request: r.request,
  status: r.status,
  imageCount: r.image_count,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  finishedAt: r.finished_at,
  expiresAt: r.expires_at,
});
const toGeneration = (r: Selectable<GenerationsTable>): GenerationRecord => ({
  taskUUID: r.task_uuid,
  index: r.idx,
  seed: r.seed,
  seriesIndex: r.series_index,
  status: r.status,
  imageUUID: r.image_uuid,
  error: r.error,
  cost: r.cost,
  nsfw: r.nsfw === null ? null : r.nsfw === 1,
  finishedAt: r.finished_at,
});
const toImage = (r: Selectable<ImagesTable>): ImageRecord => ({
  imageUUID: r.image_uuid,
  kind: r.kind,
  taskUUID: r.task_uuid,
  apiKeyId: r.api_key_id,
  format: r.format,
  width: r.width,
  height: r.height,
  bytes: r.bytes,
  objectKey: r.object_key,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  servable: r.servable === 1,
});

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
