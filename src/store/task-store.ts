/**
 * The `TaskStore` port: durable records of API keys, tasks, their generations (one per
 * expected image) and stored images. SQLite by default; no SQL leaves `store/`.
 */

export type TaskStatus = 'queued' | 'running' | 'done' | 'failed';
export type GenerationStatus = 'pending' | 'success' | 'error';
export type ImageKind = 'generated' | 'upload';

export interface ApiKeyRecord {
  readonly id: string;
  /** SHA-256 of the key, hex. The key itself is never stored. */
  readonly hash: string;
  readonly label: string;
  /** `whsec_…` secret for signing webhooks, if the key has one. */
  readonly webhookSecret: string | null;
  readonly createdAt: number;
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

export interface DeliveryUpdate {
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError: string | null;
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

  /** Inserts the task and its pending generations atomically; throws `TaskConflictError` if the UUID is taken. */
  insertTask(task: TaskRecord, generations: readonly GenerationRecord[]): Promise<void>;
  getTask(taskUUID: string): Promise<TaskRecord | undefined>;
  /** Generations of a task by index. */
  listGenerations(taskUUID: string): Promise<GenerationRecord[]>;
  setTaskStatus(taskUUID: string, status: TaskStatus, at: number, expiresAt?: number | null): Promise<void>;
  /**
   * Records the outcome of one generation and the deliveries it causes, in one transaction, so
   * a crash can neither lose a webhook nor send one for an image that was not recorded.
   */
  settleGeneration(taskUUID: string, index: number, update: GenerationUpdate, deliveries: readonly DeliveryRecord[]): Promise<void>;
  /** Engine checkpoint of one generation (see `EngineCheckpoint`). */
  loadEngineState(taskUUID: string, index: number): Promise<string | undefined>;
  saveEngineState(taskUUID: string, index: number, value: string): Promise<void>;
  /** Tasks accepted but not finished (to re-enqueue after a restart), oldest first. */
  listUnfinishedTasks(): Promise<TaskRecord[]>;
  /** Deletes ended tasks whose retention passed; returns how many. */
  deleteExpiredTasks(now: number): Promise<number>;

  insertDeliveries(deliveries: readonly DeliveryRecord[]): Promise<void>;
  /** Updates a delivery and, in the same transaction, adds the deliveries it causes (a failure notice). */
  updateDelivery(id: string, update: DeliveryUpdate, follow?: readonly DeliveryRecord[]): Promise<void>;
  /** Pending deliveries, soonest first. */
  listPendingDeliveries(): Promise<DeliveryRecord[]>;
  /** Deletes finished deliveries created before `before`; returns how many. */
  deleteSettledDeliveries(before: number): Promise<number>;
  /** Uploads of a task that failed for good (reported by getResponse as `uploadFailed`). */
  listFailedUploads(taskUUID: string): Promise<DeliveryRecord[]>;

  insertImage(record: ImageRecord): Promise<void>;
  getImage(imageUUID: string): Promise<ImageRecord | undefined>;
  /** Extends an upload's life on use (`expiresAt` = now + retention). */
  touchImage(imageUUID: string, expiresAt: number): Promise<void>;
  listExpiredImages(now: number, limit: number): Promise<ImageRecord[]>;
  deleteImage(imageUUID: string): Promise<void>;

  close(): Promise<void>;
}
