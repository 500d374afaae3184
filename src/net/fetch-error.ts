/**
 * The one error type of `src/net`: every failure of an outbound request, with a machine-readable
 * `reason` so callers (reference images, webhooks, uploads) map it to their own `ApiError` code
 * and message. The message is safe to show to the client that supplied the URL: it names the
 * URL's host and the problem, never internal details.
 */

/** Why an outbound request failed. */
export type FetchFailureReason =
  /** Not an absolute http(s) URL, or credentials in the URL. */
  | 'badUrl'
  /** The host resolves to (or is) an address outside the allowed ranges. */
  | 'blockedAddress'
  /** The host name does not resolve. */
  | 'dns'
  /** Connect timeout or total timeout elapsed. */
  | 'timeout'
  /** Connection refused or reset, TLS failure, malformed response. */
  | 'network'
  /** The final response had a status the caller does not accept (see `status`). */
  | 'httpStatus'
  /** More redirects than allowed, or a redirect without a usable `Location`. */
  | 'tooManyRedirects'
  /** The body (declared or streamed) is larger than the cap. */
  | 'tooLarge'
  /** The caller's `AbortSignal` fired. */
  | 'aborted';

/** Fields of a `FetchError` besides the reason and message. */
export interface FetchErrorDetails {
  /** The URL being requested when the failure happened (after redirects). */
  readonly url?: string;
  /** HTTP status, for `httpStatus` (and for `tooManyRedirects`, the last redirect status). */
  readonly status?: number;
  /** The refused address or its range, for `blockedAddress`. */
  readonly address?: string;
  readonly cause?: unknown;
}

export class FetchError extends Error {
  readonly reason: FetchFailureReason;
  readonly url: string | undefined;
  readonly status: number | undefined;
  readonly address: string | undefined;

  constructor(reason: FetchFailureReason, message: string, details: FetchErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FetchError';
    this.reason = reason;
    this.url = details.url;
    this.status = details.status;
    this.address = details.address;
  }
}

export function isFetchError(value: unknown): value is FetchError {
  return value instanceof FetchError;
}
