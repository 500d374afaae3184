/** The validated, normalised forms of the tasks Kiln understands (runware-protocol.md §4). */

export type OutputType = 'URL' | 'dataURI' | 'base64Data';
export type OutputFormat = 'JPG' | 'PNG' | 'WEBP';
export type DeliveryMethod = 'sync' | 'async';
export type SafetyMode = 'none' | 'fast';

export interface AuthenticationTask {
  readonly taskType: 'authentication';
  readonly apiKey: string;
  readonly connectionSessionUUID?: string;
}

export interface PingTask {
  readonly taskType: 'ping';
  /** runware-cli sends one; it is echoed. */
  readonly taskUUID?: string;
}

/** A face / subject element (Kiln extension, `inputs.elements[i]`). */
export interface ElementRequest {
  readonly frontalImage: string;
  readonly referenceImages: readonly string[];
}

/** An `imageInference` task after validation, with every default filled in. */
export interface InferenceTask {
  readonly taskType: 'imageInference';
  readonly taskUUID: string;
  readonly model: string;
  readonly positivePrompt: string;
  /** Absent when the request named no size; resolved (default or from the first reference) when the task runs. */
  readonly width?: number;
  readonly height?: number;
  readonly referenceImages: readonly string[];
  readonly elements: readonly ElementRequest[];
  readonly numberResults: number;
  readonly outputType: OutputType;
  readonly outputFormat: OutputFormat;
  readonly outputQuality: number;
  readonly deliveryMethod: DeliveryMethod;
  /** True when the immediate answer is an ack (async, or a webhook without explicit `deliveryMethod`). */
  readonly acknowledgeOnly: boolean;
  readonly webhookURL?: string;
  readonly uploadEndpoint?: string;
  readonly safetyMode: SafetyMode;
  /** URL lifetime in seconds (default applied). */
  readonly ttl: number;
  /** Kiln extension: seconds after submission past which unfinished images fail with `timeoutDeadline`. */
  readonly deadlineSeconds?: number;
  /** Kiln extension: send progress items over WebSocket while the task runs. */
  readonly progress?: boolean;
  /** Set by Kiln, not by clients: the base URL the client reached Kiln at, kept with the stored task for its image URLs. */
  readonly publicBase?: string;
  /** Set by Kiln, not by clients: the task holds images and price for its key's limits or budget (docs/tenancy.md). */
  readonly keyHold?: boolean;
  readonly includeCost: boolean;
  readonly seed?: number;
  readonly resultType: 'single' | 'series';
  /** Number of images in a series (only with `resultType: "series"`). */
  readonly seriesAmount?: number;
  /** Accepted compatibility fields that the model ignores (logged). */
  readonly ignoredFields: readonly string[];
}

export interface ImageUploadTask {
  readonly taskType: 'imageUpload';
  readonly taskUUID: string;
  readonly image: string;
}

export interface GetResponseTask {
  readonly taskType: 'getResponse';
  readonly taskUUID: string;
}

/** Kiln extension: stop a task of the caller's key (queued images dropped, running ones aborted). */
export interface CancelTask {
  readonly taskType: 'cancelTask';
  readonly taskUUID: string;
}

/** Kiln extension: the webhook and upload deliveries of a task, with every attempt. */
export interface GetDeliveriesTask {
  readonly taskType: 'getDeliveries';
  readonly taskUUID: string;
}

/** Kiln extension: send a settled or failed delivery again, under the same id. */
export interface RedeliverTask {
  readonly taskType: 'redeliver';
  readonly deliveryId: string;
  readonly taskUUID?: string;
}

export type Task = AuthenticationTask | PingTask | InferenceTask | ImageUploadTask | GetResponseTask | CancelTask | GetDeliveriesTask | RedeliverTask;

/** Number of images a task produces (a series replaces `numberResults`). */
export function imageCount(task: InferenceTask): number {
  return task.resultType === 'series' ? (task.seriesAmount ?? 1) : task.numberResults;
}
