/** The SQLite schema of the task store, and the row ↔ record mappers. */
import type { Generated, Selectable } from 'kysely';
import type { DeliveryRecord, GenerationRecord, ImageRecord, TaskRecord, TaskStatus } from './task-store.ts';

export interface ApiKeysTable {
  id: string;
  hash: string;
  label: string;
  webhook_secret: string | null;
  created_at: number;
}
export interface TasksTable {
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
export interface GenerationsTable {
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
export interface ImagesTable {
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
export interface DeliveriesTable {
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
export interface Schema {
  deliveries: DeliveriesTable;
  api_keys: ApiKeysTable;
  tasks: TasksTable;
  generations: GenerationsTable;
  images: ImagesTable;
}

/** Idempotent DDL, run at every start. */
export const MIGRATIONS = [
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

export const toDelivery = (r: Selectable<DeliveriesTable>): DeliveryRecord => ({
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
export const fromDelivery = (d: DeliveryRecord): DeliveriesTable => ({
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

export const toTask = (r: Selectable<TasksTable>): TaskRecord => ({
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
export const toGeneration = (r: Selectable<GenerationsTable>): GenerationRecord => ({
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
export const toImage = (r: Selectable<ImagesTable>): ImageRecord => ({
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

