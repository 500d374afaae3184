import { ApiError, ERROR_STATUS, type ErrorCode, type ErrorDetails } from '../../errors/index.ts';
import type { UpstreamObject } from './upstream-transport.ts';

/** Codes about the operator's upstream account (key, balance): logged loudly, never shown as the user's fault. */
const OPERATOR_CODES: ReadonlySet<string> = new Set(['invalidApiKey', 'insufficientCredits']);

/** Codes that say "not now": the same request may succeed after a backoff. */
const TRANSIENT_CODES: ReadonlySet<string> = new Set(['tooManyRequests', 'queueFull', 'serviceUnavailable', 'internalServerError', 'unknownError']);

/** Upstream faults that are the provider's, not the request's: reported as `providerError`. */
const PROVIDER_FAULT_CODES: ReadonlySet<string> = new Set(['internalServerError', 'serviceUnavailable', 'unknownError', 'taskCancelled']);

export const codeOf = (error: UpstreamObject): string => (typeof error.code === 'string' ? error.code : '');

export function isOperatorError(error: UpstreamObject): boolean {
  return OPERATOR_CODES.has(codeOf(error));
}

export function isTransientError(error: UpstreamObject): boolean {
  return TRANSIENT_CODES.has(codeOf(error));
}

/** `taskNotFound` and the like (`taskFailedOrNotFound`, `…Expired`): the upstream does not know the task. */
export function isNotFoundError(error: UpstreamObject): boolean {
  return /notfound$|expired$/i.test(codeOf(error));
}

/** What the user sees when the operator's upstream account is the problem. */
export function operatorFailure(cause?: unknown): ApiError {
  return new ApiError('providerError', 'The upstream image provider refused the request. The server operator has been notified.', {
    retryable: false,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** What the user sees when the upstream stayed unreachable or silent after bounded retries. */
export function unavailableFailure(reason: string, cause?: unknown): ApiError {
  return new ApiError(
    'timeoutProvider',
    `The upstream image provider did not respond in time (${reason}). The request was terminated; retry later.`,
    { retryable: true, ...(cause === undefined ? {} : { cause }) },
  );
}

/**
 * An upstream error object as Kiln's own error: the same `code`, `message`, `parameter` and
 * hints (run-task then ties it to the Kiln task's `taskUUID`). Codes Kiln does not know, and
 * provider-side faults, become `providerError` with the upstream's message.
 */
export function toKilnError(error: UpstreamObject): ApiError {
  const code = codeOf(error);
  const message = typeof error.message === 'string' && error.message !== '' ? error.message : `The upstream image provider reported ${code || 'an error'}.`;
  const details: ErrorDetails = {};
  const parameter = error.parameter;
  if (typeof parameter === 'string') details.parameter = parameter;
  else if (Array.isArray(parameter) && parameter.every((p) => typeof p === 'string')) details.parameter = parameter as string[];
  if (error.allowedValues !== undefined) details.allowedValues = error.allowedValues;
  if (typeof error.type === 'string') details.type = error.type;
  if (typeof error.documentation === 'string') details.documentation = error.documentation;
  if (typeof error.min === 'number') details.min = error.min;
  if (typeof error.max === 'number') details.max = error.max;
  if (Object.hasOwn(ERROR_STATUS, code) && !PROVIDER_FAULT_CODES.has(code) && !OPERATOR_CODES.has(code)) {
    return new ApiError(code as ErrorCode, message, details);
  }
  return new ApiError('providerError', message, details);
}
