/**
 * Why one image reference could not be used, before it is tied to a parameter name.
 *
 * A deduplicated reference is resolved once but may sit at several positions of a task, so the
 * shared work fails with a `ReferenceProblem` and each position turns it into its own
 * `ApiError` naming its own `parameter`.
 */
import { ApiError } from '../errors/index.ts';
import { ImageDecodeError } from '../imaging/decode-input.ts';
import { FetchError } from '../net/fetch-error.ts';

/**
 * `invalid`: the reference or its image breaks a rule (malformed, unknown UUID, wrong format,
 * too small, too large, private address). `fetch`: the URL could not be downloaded.
 * `cancelled`: the task was cancelled meanwhile.
 */
export type ReferenceProblemKind = 'invalid' | 'fetch' | 'cancelled';

/** What the reference is for: the error code of an invalid image differs. */
export type ReferencePurpose = 'reference' | 'upload';

export class ReferenceProblem extends Error {
  constructor(
    readonly kind: ReferenceProblemKind,
    /** A sentence for the client, e.g. "The image is 200×200; each side must be at least 300 px." */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
    this.name = 'ReferenceProblem';
  }
}

/** The client-facing error for one position. */
export function toItemError(problem: ReferenceProblem, parameter: string, purpose: ReferencePurpose): ApiError {
  const details = { parameter, cause: problem.cause ?? problem };
  switch (problem.kind) {
    case 'invalid':
      return new ApiError(
        purpose === 'upload' ? 'invalidImage' : 'invalidReferenceImage',
        `Invalid value for '${parameter}' parameter. ${problem.reason}`,
        details,
      );
    case 'fetch':
      return new ApiError('imageFetchFailed', `Could not download the image for '${parameter}' parameter. ${problem.reason}`, details);
    case 'cancelled':
      return new ApiError('taskCancelled', 'The task was cancelled before it finished.', details);
  }
}

/** Maps a failed download. Unacceptable URLs and oversized bodies are the client's input, not a fetch fault. */
export function fromFetchError(error: FetchError, maxBytes: number): ReferenceProblem {
  const options = { cause: error };
  switch (error.reason) {
    case 'badUrl':
    case 'blockedAddress':
      return new ReferenceProblem('invalid', error.message, options);
    case 'tooLarge':
      return new ReferenceProblem('invalid', `The image is larger than ${formatBytes(maxBytes)}.`, options);
    case 'aborted':
      return new ReferenceProblem('cancelled', error.message, options);
    case 'httpStatus':
    case 'dns':
    case 'timeout':
    case 'network':
    case 'tooManyRedirects':
      return new ReferenceProblem('fetch', error.message, options);
  }
}

export function fromDecodeError(error: ImageDecodeError): ReferenceProblem {
  return new ReferenceProblem('invalid', error.message, { cause: error });
}

/** Converts the known failures of resolving; anything else is an internal fault and is rethrown. */
export function toReferenceProblem(error: unknown, maxBytes: number): ReferenceProblem {
  if (error instanceof ReferenceProblem) return error;
  if (error instanceof FetchError) return fromFetchError(error, maxBytes);
  if (error instanceof ImageDecodeError) return fromDecodeError(error);
  throw error;
}

export function formatBytes(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return Number.isInteger(mb) ? `${mb} MB` : `${bytes} bytes`;
}
