/**
 * One error model for the whole server: Runware's camelCase codes, each with its HTTP status.
 * Everything that reaches a client as an error goes through `ApiError`; anything else is an
 * internal fault and is reported as `internalServerError` without its message.
 */

export const ERROR_STATUS = {
  invalidApiKey: 401,
  insufficientCredits: 402,
  invalidTaskUUID: 400,
  conflictTaskUUID: 400,
  invalidPositivePrompt: 400,
  unsupportedDimensions: 400,
  unsupportedParameter: 400,
  invalidParameter: 400,
  invalidWidth: 400,
  invalidHeight: 400,
  invalidNumberResults: 400,
  invalidOutputType: 400,
  invalidOutputFormat: 400,
  invalidOutputQuality: 400,
  invalidDeliveryMethod: 400,
  invalidTtl: 400,
  invalidIncludeCost: 400,
  invalidSafety: 400,
  invalidSeed: 400,
  invalidProviderSettings: 400,
  invalidElements: 400,
  missingParameter: 400,
  invalidModel: 400,
  unsupportedTaskType: 400,
  invalidRequestBody: 400,
  requestTooLarge: 413,
  responseTooLarge: 413,
  tooManyImages: 400,
  forbidden: 403,
  invalidReferenceImage: 400,
  invalidImage: 400,
  imageFetchFailed: 400,
  invalidWebhookURL: 400,
  invalidUploadEndpoint: 400,
  taskNotFound: 404,
  imageNotFound: 404,
  notFound: 404,
  tooManyRequests: 429,
  queueFull: 429,
  rateLimitExceeded: 429,
  nsfwContentDetected: 400,
  uploadFailed: 502,
  timeoutProvider: 504,
  providerError: 502,
  taskCancelled: 503,
  timeoutDeadline: 504,
  serviceUnavailable: 503,
  internalServerError: 500,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Fields of a Runware error object besides `code` and `message`. */
export interface ErrorDetails {
  /** The offending field (`inputs.referenceImages[2]`), or several fields that break a rule together. */
  parameter?: string | readonly string[];
  taskUUID?: string;
  taskType?: string;
  allowedValues?: unknown;
  /** Expected JSON type of the parameter (`integer`, `string`, …). */
  type?: string;
  /** Link to the parameter's documentation. */
  documentation?: string;
  min?: number;
  max?: number;
  /** Extra fields sent as they are (e.g. `imageUUID` on `uploadFailed`). */
  extra?: Readonly<Record<string, unknown>>;
  /** Whether retrying the same request later may succeed (not sent on the wire). */
  retryable?: boolean;
  cause?: unknown;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = details;
  }

  get retryable(): boolean {
    return this.details.retryable ?? (this.status === 429 || this.status >= 500);
  }

  /** The same error, tied to a task (errors raised deep inside do not know their task). */
  forTask(taskUUID: string, taskType: string): ApiError {
    if (this.details.taskUUID === taskUUID && this.details.taskType === taskType) return this;
    return new ApiError(this.code, this.message, { ...this.details, taskUUID, taskType });
  }

  /**
   * Rebuilds an error from its wire form (`toJSON`), e.g. after it crossed a process boundary
   * or was stored. Unknown codes become `internalServerError`; unknown fields go to `extra`.
   */
  static fromWire(body: Readonly<Record<string, unknown>>): ApiError {
    const { code, message, parameter, type, allowedValues, min, max, documentation, taskType, taskUUID, ...extra } = body;
    const known = typeof code === 'string' && code in ERROR_STATUS;
    const details: ErrorDetails = {
      ...(typeof parameter === 'string' || Array.isArray(parameter) ? { parameter: parameter as string | string[] } : {}),
      ...(typeof type === 'string' ? { type } : {}),
      ...(allowedValues === undefined ? {} : { allowedValues }),
      ...(typeof min === 'number' ? { min } : {}),
      ...(typeof max === 'number' ? { max } : {}),
      ...(typeof documentation === 'string' ? { documentation } : {}),
      ...(typeof taskType === 'string' ? { taskType } : {}),
      ...(typeof taskUUID === 'string' ? { taskUUID } : {}),
      ...(Object.keys(extra).length > 0 ? { extra } : {}),
    };
    return new ApiError(known ? (code as ErrorCode) : 'internalServerError', typeof message === 'string' ? message : 'An internal error occurred.', details);
  }

  /** The Runware wire form: `{code, message, parameter?, taskType?, taskUUID?, …}`. */
  toJSON(): Record<string, unknown> {
    const d = this.details;
    const body: Record<string, unknown> = { code: this.code, message: this.message };
    if (d.parameter !== undefined) body.parameter = d.parameter;
    if (d.type !== undefined) body.type = d.type;
    if (d.allowedValues !== undefined) body.allowedValues = d.allowedValues;
    if (d.min !== undefined) body.min = d.min;
    if (d.max !== undefined) body.max = d.max;
    if (d.documentation !== undefined) body.documentation = d.documentation;
    if (d.taskType !== undefined) body.taskType = d.taskType;
    if (d.taskUUID !== undefined) body.taskUUID = d.taskUUID;
    if (d.extra) Object.assign(body, d.extra);
    return body;
  }
}

export function isApiError(value: unknown): value is ApiError {
  return value instanceof ApiError;
}

/** Turns anything thrown into an `ApiError` that is safe to send: internal messages never leak. */
export function toApiError(value: unknown): ApiError {
  if (value instanceof ApiError) return value;
  if (value instanceof Error && value.name === 'AbortError') {
    return new ApiError('taskCancelled', 'The task was cancelled before it finished.', { cause: value });
  }
  return new ApiError('internalServerError', 'An internal error occurred while processing the task.', {
    cause: value,
  });
}
