/**
 * The task store's tables as kysely sees them (one shape on SQLite and PostgreSQL), and the
 * row ↔ record mappers. Timestamps are epoch milliseconds (`bigint` on PostgreSQL, parsed to
 * JS numbers by the pool); booleans are integers 0/1 on both dialects, so one mapper serves both.
 */
import type { Generated, Insertable, Selectable } from 'kysely';
import type { ApiKeyRecord, DeliveryRecord, GenerationRecord, ImageRecord, TaskRecord, TaskStatus } from './task-store.ts';

/** The SQL dialects the store runs on. */
export type StoreDialect = 'sqlite' | 'postgres';

export interface ApiKeysTable {
  id: string;
  hash: string;
  label: string;
  webhook_secret: string | null;
  created_at: number;
  // Migration 0003 (key lifecycle).
  hash_kind: Generated<string>;
  revoked_at: number | null;
  source: string | null;
  hint: string | null;
  previous_webhook_secret: string | null;
  previous_webhook_secret_until: number | null;
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
  /** Fencing token: incremented by every claim of the task (migration 2). */
  claim_token: Generated<number>;
  claimed_at: number | null;
  /** When `deadlineSeconds` ends, null without one (migration 7). */
  deadline_at: number | null;
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
  /** What the upstream engine reported for the image (USD), when it did. */
  upstream_cost: Generated<number | null>;
  nsfw: number | null;
  finished_at: number | null;
  engine_state: string | null;
}
export interface ImagesTable {
  seq: Generated<number>;
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
  /** Who may send it until `lease_until` (migration 2); null when free. */
  lease_owner: string | null;
  lease_until: number | null;
}
/** One attempt of a delivery (migration 5). */
export interface DeliveryAttemptsTable {
  delivery_id: string;
  attempt: number;
  at: number;
  http_status: number | null;
  error: string | null;
  latency_ms: number;
}
/** Named leases (e.g. the sweeper's turn), migration 2. */
export interface LeasesTable {
  name: string;
  owner: string;
  until: number;
}
export interface StoreSchema {
  api_keys: ApiKeysTable;
  tasks: TasksTable;
  generations: GenerationsTable;
  images: ImagesTable;
  deliveries: DeliveriesTable;
  delivery_attempts: DeliveryAttemptsTable;
  leases: LeasesTable;
}

/** taskUUIDs are compared case-insensitively: the store keeps and looks up the lower-case form. */
export const taskKey = (taskUUID: string): string => taskUUID.toLowerCase();

export const toApiKey = (r: Selectable<ApiKeysTable>): ApiKeyRecord => ({
  id: r.id,
  hash: r.hash,
  label: r.label,
  webhookSecret: r.webhook_secret,
  createdAt: r.created_at,
  // Lifecycle fields (migration 0003) only when they differ from their defaults, so a record
  // reads back as it was inserted.
  ...(r.hash_kind === 'hmac' ? { hashKind: 'hmac' as const } : {}),
  ...(r.revoked_at === null ? {} : { revokedAt: Number(r.revoked_at) }),
  ...(r.source === 'config' || r.source === 'cli' || r.source === 'first-start' ? { source: r.source } : {}),
  ...(r.hint === null ? {} : { hint: r.hint }),
  ...(r.previous_webhook_secret === null ? {} : { previousWebhookSecret: r.previous_webhook_secret }),
  ...(r.previous_webhook_secret_until === null ? {} : { previousWebhookSecretUntil: Number(r.previous_webhook_secret_until) }),
});

export const fromDelivery = (d: DeliveryRecord): Insertable<DeliveriesTable> => ({
  id: d.id,
  task_uuid: taskKey(d.taskUUID),
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

export const fromTask = (t: TaskRecord): Insertable<TasksTable> => ({
  task_uuid: taskKey(t.taskUUID),
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
  deadline_at: t.deadlineAt ?? null,
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
  claimedAt: r.claimed_at,
  deadlineAt: r.deadline_at,
});

export const fromGeneration = (g: GenerationRecord): Insertable<GenerationsTable> => ({
  task_uuid: taskKey(g.taskUUID),
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
  upstreamCost: r.upstream_cost,
  nsfw: r.nsfw === null ? null : r.nsfw === 1,
  finishedAt: r.finished_at,
});

export const fromImage = (i: ImageRecord): Insertable<ImagesTable> => ({
  image_uuid: i.imageUUID,
  kind: i.kind,
  task_uuid: i.taskUUID === null ? null : taskKey(i.taskUUID),
  api_key_id: i.apiKeyId,
  format: i.format,
  width: i.width,
  height: i.height,
  bytes: i.bytes,
  object_key: i.objectKey,
  created_at: i.createdAt,
  expires_at: i.expiresAt,
  servable: Number(i.servable),
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
