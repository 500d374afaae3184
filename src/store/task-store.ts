/**
 * The `TaskStore` port: durable records of API keys, tasks, their generations (one per
 * expected image), stored images, deliveries and leases. One kysely implementation serves
 * SQLite (default) and PostgreSQL (scaled out); no SQL leaves `store/`.
 *
 * taskUUIDs are compared case-insensitively: every method lower-cases the taskUUIDs it is
 * given, and records carry the lower-case form.
 */

import type { TenancyStore } from './tenancy-store.ts';

export type TaskStatus = 'queued' | 'running' | 'done' | 'failed';
export type GenerationStatus = 'pending' | 'success' | 'error';
export type ImageKind = 'generated' | 'upload';

export interface ApiKeyRecord {
  readonly id: string;
  /** Hash of the key, hex: HMAC-SHA256 with the server's key-hash secret (`hashKind: 'hmac'`), or bare SHA-256 for keys stored before it existed. The key itself is never stored. */
  readonly hash: string;
  readonly label: string;
  /** `whsec_…` secret for signing webhooks, if the key has one. */
  readonly webhookSecret: string | null;
  readonly createdAt: number;
  /** How `hash` was made. Default `sha256` (records from before migration 0003). */
  readonly hashKind?: ApiKeyHashKind;
  /** When the key was revoked; `null` while it is valid. */
  readonly revokedAt?: number | null;
  /** Where the key came from: `config` (KILN_API_KEYS, reconciled at start), `cli`, `first-start`. */
  readonly source?: ApiKeySource | null;
  /** The key's first characters (`kiln_AbC1…`), so an operator can tell keys apart. */
  readonly hint?: string | null;
  /** The webhook secret replaced by the last rotation, still valid until `previousWebhookSecretUntil`. */
  readonly previousWebhookSecret?: string | null;
  readonly previousWebhookSecretUntil?: number | null;
}

export type ApiKeyHashKind = 'hmac' | 'sha256';
export type ApiKeySource = 'config' | 'cli' | 'first-start';

/** Fields of a key record that may change after it was made. */
export interface ApiKeyPatch {
  readonly hash?: string;
  readonly hashKind?: ApiKeyHashKind;
  readonly webhookSecret?: string | null;
  readonly hint?: string | null;
  readonly previousWebhookSecret?: string | null;
  readonly previousWebhookSecretUntil?: number | null;
}

export interface TaskRecord {
  readonly taskUUID: string;
  readonly apiKeyId: string;
  readonly taskType: string;
  readonly model: string;
  readonly engine: string;
  /** The validated task (`InferenceTask`) as JSON. */
  readonly request: string;
  readonly status: TaskStatus;
  readonly imageCount: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly finishedAt: number | null;
  /** When the record (and its non-URL images) may be deleted; set when the task ends. */
  readonly expiresAt: number | null;
  /** When a worker last claimed (started) the task; `null` while it has never run. */
  readonly claimedAt?: number | null;
  /** When its `deadlineSeconds` ends; `null` (or absent) without one. */
  readonly deadlineAt?: number | null;
}

/** A task claimed for one run (`claimTask`). */
export interface ClaimedTask {
  readonly task: TaskRecord;
  /** The claim token every write of this run carries. */
  readonly fence: number;
}

export interface GenerationRecord {
  readonly taskUUID: string;
  readonly index: number;
  readonly seed: number;
  readonly seriesIndex: number | null;
  readonly status: GenerationStatus;
  readonly imageUUID: string | null;
  /** The Runware error object (JSON) of a failed generation. */
  readonly error: string | null;
  readonly cost: number | null;
  /** What an upstream engine reported for the image (USD), kept for a charge made later (docs/tenancy.md). */
  readonly upstreamCost?: number | null;
  readonly nsfw: boolean | null;
  readonly finishedAt: number | null;
}

export interface ImageRecord {
  readonly imageUUID: string;
  readonly kind: ImageKind;
  readonly taskUUID: string | null;
  /** The API key whose task or upload made the image; only that key may use it as a reference. */
  readonly apiKeyId: string | null;
  readonly format: 'jpg' | 'png' | 'webp';
  readonly width: number;
  readonly height: number;
  readonly bytes: number;
  readonly objectKey: string;
  readonly createdAt: number;
  /** URL lifetime end (generated URL outputs), or retention end (uploads, non-URL outputs). */
  readonly expiresAt: number | null;
  /** Whether `/image/<uuid>.<ext>` serves it (URL outputs and uploads). */
  readonly servable: boolean;
}

export interface GenerationUpdate {
  readonly status: GenerationStatus;
  readonly imageUUID?: string;
  readonly error?: string;
  readonly cost?: number;
  readonly upstreamCost?: number;
  readonly nsfw?: boolean;
  /** The seed the engine actually used, when it differs from the planned one. */
  readonly seed?: number;
  readonly finishedAt: number;
}

export type DeliveryKind = 'webhook' | 'upload';
export type DeliveryStatus = 'pending' | 'done' | 'failed';

/**
 * One outbound delivery (a webhook POST or an upload PUT), durable so that pending retries
 * survive a restart. Its `id` is sent with every attempt so receivers can dedupe.
 */
export interface DeliveryRecord {
  readonly id: string;
  readonly taskUUID: string;
  readonly apiKeyId: string;
  readonly kind: DeliveryKind;
  readonly url: string;
  /** The image the delivery is about, if any. */
  readonly imageUUID: string | null;
  /** Webhook: the JSON body. Upload: null (the bytes are the object). */
  readonly body: string | null;
  /** Upload: the stored object to PUT. */
  readonly objectKey: string | null;
  /** Upload: the task's webhook, told with an `uploadFailed` error if the upload fails for good. */
  readonly notifyUrl: string | null;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError: string | null;
  readonly createdAt: number;
}

/** One attempt of a delivery, as the delivery log shows it. */
export interface DeliveryAttempt {
  readonly deliveryId: string;
  /** 1 for the first attempt; a redelivery continues the count. */
  readonly attempt: number;
  readonly at: number;
  /** The receiver's HTTP status, when it answered. */
  readonly httpStatus: number | null;
  /** What went wrong (network error, timeout, status), or null on success. */
  readonly error: string | null;
  readonly latencyMs: number;
}

export interface DeliveryUpdate {
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError: string | null;
  /** A redelivery starts the delivery's retention afresh (the sweep cuts settled ones by it). */
  readonly createdAt?: number;
}

/**
 * A write fenced by a claim token lost: another run of the task claimed it since (or the
 * generation was already settled). Nothing was written; the run that got it must stop.
 */
export class ClaimLostError extends Error {
  constructor(readonly taskUUID: string) {
    super(`the claim on task ${taskUUID} was lost`);
    this.name = 'ClaimLostError';
  }
}

export class TaskConflictError extends Error {
  constructor(readonly taskUUID: string) {
    super(`task ${taskUUID} exists`);
    this.name = 'TaskConflictError';
  }
}

export interface TaskStore {
  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | undefined>;
  findApiKeyById(id: string): Promise<ApiKeyRecord | undefined>;
  insertApiKey(record: ApiKeyRecord): Promise<void>;
  countApiKeys(): Promise<number>;
  /** Every key, revoked ones included, oldest first. */
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** Marks a key revoked at `at`; false when no such key exists or it was already revoked. */
  revokeApiKey(id: string, at: number): Promise<boolean>;
  /** Changes a key (a rotation, a re-hash, a new webhook secret); false when no such key exists. */
  updateApiKey(id: string, patch: ApiKeyPatch): Promise<boolean>;

  /** Inserts the task and its pending generations atomically; throws `TaskConflictError` if the UUID is taken. */
  insertTask(task: TaskRecord, generations: readonly GenerationRecord[]): Promise<void>;
  getTask(taskUUID: string): Promise<TaskRecord | undefined>;
  /** Generations of a task by index. */
  listGenerations(taskUUID: string): Promise<GenerationRecord[]>;
  /**
   * Sets a task's status. With `fence`, only while the task's claim token is still `fence`
   * (else `ClaimLostError`). Ending a task (`done`/`failed` with `expiresAt`) also gives its
   * inline (non-URL) images the task's expiry, unless `inlineImages` is false (the task's output
   * is URLs: it has none, and the store may skip looking).
   */
  setTaskStatus(taskUUID: string, status: TaskStatus, at: number, expiresAt?: number | null, fence?: number, inlineImages?: boolean): Promise<void>;
  /**
   * Claims an unfinished task for one run: increments its claim token, sets it `running` and
   * returns the new token (the fence every later write of this run carries) with the task's
   * record as the claim left it. `undefined` when the task is unknown or already ended.
   */
  claimTask(taskUUID: string, at: number): Promise<ClaimedTask | undefined>;
  /**
   * Records the outcome of one pending generation and the deliveries it causes, in one
   * transaction, so a crash can neither lose a webhook nor send one for an image that was not
   * recorded. With `fence`: throws `ClaimLostError` (writing nothing) unless the task's claim
   * token is still `fence` and the generation is still pending.
   */
  settleGeneration(
    taskUUID: string,
    index: number,
    update: GenerationUpdate,
    deliveries: readonly DeliveryRecord[],
    fence?: number,
  ): Promise<void>;
  /** Engine checkpoint of one generation (see `EngineCheckpoint`). */
  loadEngineState(taskUUID: string, index: number): Promise<string | undefined>;
  /** With `fence`: `ClaimLostError` unless the claim token is still `fence`. */
  saveEngineState(taskUUID: string, index: number, value: string, fence?: number): Promise<void>;
  /**
   * Cancels an unfinished task in one transaction: takes a new claim (so no run that claimed it
   * before can write again, and none can claim it after: the task ends here), ends every pending
   * generation with the error `errorFor` builds from their indexes, stores `webhookFor`'s
   * delivery of that error, and sets the task done (an image had finished) or failed with its
   * expiry. Answers the indexes it ended and the finished imageUUIDs; `undefined` when the task
   * had already ended (or is unknown). With `onlyQueued`, a task a run has claimed is left alone
   * (`undefined`) too: its run ends it.
   */
  cancelTask(
    taskUUID: string,
    at: number,
    expiresAt: number,
    errorFor: (indexes: readonly number[]) => string,
    webhookFor?: (error: string) => DeliveryRecord,
    options?: { onlyQueued?: boolean },
  ): Promise<{ cancelled: number[]; finished: string[] } | undefined>;
  /** Deletes a task and its generations (a submission whose enqueue failed); unknown ids are ignored. */
  deleteTask(taskUUID: string): Promise<void>;
  /** Tasks accepted but not finished (to re-enqueue after a restart), oldest first. */
  listUnfinishedTasks(): Promise<TaskRecord[]>;
  /** Up to `limit` tasks in `status` (default queued) whose deadline is at or before `before`, earliest deadline first. */
  listOverdueTasks(before: number, limit: number, status?: 'queued' | 'running'): Promise<TaskRecord[]>;
  /** Deletes ended tasks whose retention passed; returns how many. */
  deleteExpiredTasks(now: number): Promise<number>;

  insertDeliveries(deliveries: readonly DeliveryRecord[]): Promise<void>;
  /**
   * Updates a delivery (freeing its lease) and, in the same transaction, adds the deliveries it
   * causes (a failure notice). With `owner`, only while the delivery is pending and leased to
   * `owner` (the outcome of an attempt whose lease ran out is dropped, follow-ups included).
   * Answers whether the delivery was updated.
   */
  updateDelivery(id: string, update: DeliveryUpdate, follow?: readonly DeliveryRecord[], owner?: string): Promise<boolean>;
  /** Pending deliveries, soonest first. */
  listPendingDeliveries(): Promise<DeliveryRecord[]>;
  /**
   * Pending deliveries due by `now` (`nextAttemptAt <= now`) whose lease is free or expired,
   * soonest first, at most `limit`. Candidates only: a process must `claimDelivery` before it sends.
   */
  listDueDeliveries(now: number, limit: number): Promise<DeliveryRecord[]>;
  /**
   * Leases a pending delivery to `owner` until `leaseUntil`, if it is free, expired, or already
   * `owner`'s; returns the current record, or `undefined` when another process holds it or it
   * is no longer pending. One atomic conditional update on both dialects.
   */
  claimDelivery(id: string, owner: string, leaseUntil: number, now: number): Promise<DeliveryRecord | undefined>;
  /** Deletes finished deliveries created before `before`; returns how many. */
  deleteSettledDeliveries(before: number): Promise<number>;
  /** Logs one attempt of a delivery. */
  recordDeliveryAttempt(attempt: Omit<DeliveryAttempt, 'attempt'>): Promise<void>;
  /** A task's deliveries (oldest first), each with its attempts in order. */
  listTaskDeliveries(taskUUID: string): Promise<{ delivery: DeliveryRecord; attempts: DeliveryAttempt[] }[]>;
  getDelivery(id: string): Promise<DeliveryRecord | undefined>;
  /** Uploads of a task that failed for good (reported by getResponse as `uploadFailed`). */
  listFailedUploads(taskUUID: string): Promise<DeliveryRecord[]>;

  /**
   * Takes or renews the named lease (e.g. `sweeper`) for `owner` until `until`, if it is free,
   * expired at `now`, or already `owner`'s. True when `owner` holds it.
   */
  acquireLease(name: string, owner: string, until: number, now: number): Promise<boolean>;
  /** Gives the lease up if `owner` holds it. */
  releaseLease(name: string, owner: string): Promise<void>;

  insertImage(record: ImageRecord): Promise<void>;
  getImage(imageUUID: string): Promise<ImageRecord | undefined>;
  /** The upload stored under a taskUUID (case-insensitive), if any; the first stored when there are several. */
  findUpload(taskUUID: string): Promise<ImageRecord | undefined>;
  /** Extends an upload's life on use (`expiresAt` = now + retention). */
  touchImage(imageUUID: string, expiresAt: number): Promise<void>;
  listExpiredImages(now: number, limit: number): Promise<ImageRecord[]>;
  /**
   * Deletes an image's row; with `expiredBy`, only while it has expired by then (an image whose
   * life was extended since it was listed stays). Answers whether a row was deleted.
   */
  deleteImage(imageUUID: string, expiredBy?: number): Promise<boolean>;
  /**
   * Images waiting or running ahead of a task accepted at `createdAt`: every unfinished image of
   * running tasks, and the images of tasks queued before it (`queuePosition` in getResponse).
   */
  imagesAhead(createdAt: number): Promise<number>;

  /** One trivial statement: resolves when the database answers (readiness checks). */
  ping(): Promise<void>;
  /** Cluster-wide counts for the operator's gauges and `/ready` (indexed, cheap enough per scrape). */
  operatorCounts(): Promise<OperatorCounts>;
  /** This process's connection pool (PostgreSQL); `undefined` on SQLite (one connection). */
  poolUse(): PoolUse | undefined;

  close(): Promise<void>;
  /** Per-key limits, budgets, holds and the usage ledger, on the same database (docs/tenancy.md). */
  tenancy(): TenancyStore;
}

/** What `operatorCounts` answers. */
export interface OperatorCounts {
  /** Images of tasks accepted and not yet started (`queued`). */
  readonly queuedImages: number;
  /** Images of tasks being run (`running`; their finished images included). */
  readonly runningImages: number;
  /** Pending deliveries by kind (`webhook`, `upload`). */
  readonly pendingDeliveries: Readonly<Partial<Record<DeliveryKind, number>>>;
}

/** Connections of a PostgreSQL pool in this process. */
export interface PoolUse {
  readonly max: number;
  /** Connections open, busy or idle. */
  readonly total: number;
  readonly idle: number;
  /** Statements waiting for a free connection. */
  readonly waiting: number;
}
