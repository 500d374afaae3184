import { ApiError, type ErrorDetails } from './api-error.ts';

/** Docs anchor Runware uses: `#request-<param lowercased, dots→dashes>`. */
const DOCS = 'https://runware.ai/docs/models/klingai-image-o3';

export function documentationFor(parameter: string): string {
  return `${DOCS}#request-${parameter.toLowerCase().replace(/\./g, '-').replace(/\[\d+\]/g, '')}`;
}

export function invalidValue(parameter: string, rule: string, details: ErrorDetails = {}): ApiError {
  return new ApiError('invalidParameter', `Invalid value for '${parameter}' parameter. ${rule}`, {
    parameter,
    ...details,
  });
}

export function missingParameter(parameter: string, details: ErrorDetails = {}): ApiError {
  return new ApiError('missingParameter', `Missing required parameter '${parameter}'.`, {
    parameter,
    ...details,
  });
}

export function unsupportedParameter(parameter: string, details: ErrorDetails = {}): ApiError {
  return new ApiError(
    'unsupportedParameter',
    `Unsupported use of '${parameter}' parameter. This parameter is not supported for the selected model.`,
    { parameter, ...details },
  );
}

export function invalidApiKey(): ApiError {
  return new ApiError('invalidApiKey', 'Invalid API key. Provide a valid key with Authorization: Bearer <key> or an authentication task.', {
    parameter: 'apiKey',
    taskType: 'authentication',
    retryable: false,
  });
}

export function taskNotFound(taskUUID: string): ApiError {
  return new ApiError(
    'taskNotFound',
    `No task with taskUUID '${taskUUID}' exists, or its results have expired.`,
    { parameter: 'taskUUID', taskUUID, taskType: 'getResponse' },
  );
}

export function invalidImageInput(parameter: string, reason: string, details: ErrorDetails = {}): ApiError {
  return new ApiError('invalidReferenceImage', `Invalid value for '${parameter}' parameter. ${reason}`, {
    parameter,
    ...details,
  });
}

/** kiln-extensions.md: a failed upload is an error item after the results; the image itself stands. */
export function uploadFailed(taskUUID: string, imageUUID: string, reason: string | null): ApiError {
  return new ApiError('uploadFailed', `The image could not be uploaded to uploadEndpoint${reason ? `: ${reason}` : '.'} It is still available as delivered.`, {
    parameter: 'uploadEndpoint',
    taskUUID,
    taskType: 'imageInference',
    extra: { imageUUID },
  });
}

/** Admission refused a task: the cluster-wide bound of images waiting or running is reached. */
export function queueFull(taskUUID: string, taskType: string, capacity: number): ApiError {
  return new ApiError('queueFull', 'The server is at capacity. Retry after a short delay.', {
    taskUUID,
    taskType,
    retryable: true,
    extra: { limit: capacity },
  });
}

/** A shared service (Redis, the database) did not answer in time; nothing was accepted. */
export function serviceUnavailable(taskUUID: string | undefined, taskType: string | undefined, what: string): ApiError {
  return new ApiError('serviceUnavailable', `The service is temporarily unavailable (${what}). Retry after a short delay.`, {
    ...(taskUUID === undefined ? {} : { taskUUID }),
    ...(taskType === undefined ? {} : { taskType }),
    retryable: true,
  });
}

/** Too many failed authentications from one client address: the key is not even checked. */
export function tooManyAuthFailures(retryAfterSeconds: number): ApiError {
  return new ApiError(
    'tooManyRequests',
    `Too many failed authentications from this address. Retry after ${retryAfterSeconds} seconds.`,
    { taskType: 'authentication', retryable: true, extra: { retryAfter: retryAfterSeconds } },
  );
}

/** A body larger than an unauthenticated caller may send, refused unread (`invalidApiKey`, 401). */
export function preAuthTooLarge(limitBytes: number): ApiError {
  // 401, not 413: the size is fine for a caller with a key, which is what is missing.
  return new ApiError(
    'invalidApiKey',
    `Requests without a valid API key may carry at most ${limitBytes} bytes. Send Authorization: Bearer <key> (or authenticate the WebSocket first) for larger requests.`,
    { parameter: 'apiKey', taskType: 'authentication', retryable: false },
  );
}

/** A body larger than the configured maximum. */
export function requestTooLarge(limitBytes: number): ApiError {
  return new ApiError('requestTooLarge', `The request body is larger than ${limitBytes} bytes.`, { retryable: false });
}

/** JSON nested deeper than the server accepts; refused before it is parsed. */
export function jsonTooDeep(maxDepth: number): ApiError {
  return new ApiError('invalidRequestBody', `The request body is nested deeper than ${maxDepth} levels.`, { retryable: false });
}

/** A REST reply would carry more than the configured number of bytes. */
export function responseTooLarge(limitBytes: number, taskUUID: string | undefined, taskType: string | undefined): ApiError {
  return new ApiError(
    'responseTooLarge',
    `The reply would be larger than ${limitBytes} bytes. Use outputType "URL", send fewer tasks per request, or use the WebSocket API.`,
    {
      ...(taskUUID === undefined ? {} : { taskUUID }),
      ...(taskType === undefined ? {} : { taskType }),
      parameter: 'outputType',
      retryable: false,
      extra: { limit: limitBytes },
    },
  );
}

/** One request asks for more images × megapixels than the server accepts at once. */
export function tooManyImages(requestedMegapixels: number, limitMegapixels: number): ApiError {
  return new ApiError(
    'tooManyImages',
    `The request asks for ${Math.ceil(requestedMegapixels)} megapixels of images (numberResults × width × height over all tasks, 16 per imageUpload from a URL); at most ${limitMegapixels} are accepted per request. Send fewer or smaller images per request.`,
    { parameter: 'numberResults', retryable: false, extra: { limit: limitMegapixels } },
  );
}

/** The caller may not read this resource (`/metrics` without its token). */
export function forbidden(what: string): ApiError {
  return new ApiError('forbidden', `${what} is not available to this client.`, { retryable: false });
}

/** The images a `cancelTask` ended (one error item for all of them). */
export function taskCancelled(taskUUID: string): ApiError {
  return new ApiError('taskCancelled', 'The task was cancelled by its API key before these images were finished. They are not charged.', {
    taskUUID,
    taskType: 'imageInference',
    retryable: false,
  });
}

/** Images not finished by the task's `deadlineSeconds`. */
export function timeoutDeadline(taskUUID: string, deadlineSeconds: number): ApiError {
  return new ApiError(
    'timeoutDeadline',
    `The task's deadline of ${deadlineSeconds} s after submission passed before these images were finished. They are not charged.`,
    { parameter: 'deadlineSeconds', taskUUID, taskType: 'imageInference', retryable: false },
  );
}

/**
 * An API key's own limit (docs/tenancy.md): too many images queued or in flight for this key
 * (`queueFull`). `limit` is the key's limit, `limitType` which one; `retryAfter` in seconds.
 */
export function keyQueueFull(taskUUID: string, taskType: string, limitType: 'concurrentImages' | 'queuedImages', limit: number, retryAfterSeconds: number): ApiError {
  const what = limitType === 'queuedImages' ? 'queued images' : 'images in progress';
  return new ApiError('queueFull', `This API key has reached its limit of ${limit} ${what}. Retry after ${retryAfterSeconds} seconds.`, {
    taskUUID,
    taskType,
    retryable: true,
    extra: { limit, limitType, retryAfter: retryAfterSeconds },
  });
}

/** An API key sent tasks faster than its rate (tasks per second, with a burst of the same number). */
export function rateLimitExceeded(taskUUID: string, taskType: string, limit: number, retryAfterSeconds: number): ApiError {
  return new ApiError('rateLimitExceeded', `This API key is limited to ${limit} tasks per second. Retry after ${retryAfterSeconds} seconds.`, {
    taskUUID,
    taskType,
    retryable: true,
    extra: { limit, limitType: 'rate', retryAfter: retryAfterSeconds },
  });
}

/** The task's price is more than what is left of the key's budget; nothing was charged. */
export function insufficientCredits(taskUUID: string, taskType: string, cost: number, budgetRemaining: number, budget: number): ApiError {
  return new ApiError(
    'insufficientCredits',
    `Insufficient credits: the task costs ${cost} USD and ${budgetRemaining} USD is left of this API key's budget.`,
    { taskUUID, taskType, extra: { cost, budgetRemaining, budget } },
  );
}

/** A taskUUID already used by another task (or another key). */
export function conflictTaskUUID(taskUUID: string, taskType: string): ApiError {
  return new ApiError('conflictTaskUUID', `The taskUUID '${taskUUID}' is already in use. Use a new UUID v4 for each task.`, {
    parameter: 'taskUUID',
    taskUUID,
    taskType,
  });
}
