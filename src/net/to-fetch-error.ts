/**
 * Maps whatever undici, the socket or the resolver threw into a `FetchError`. The cause chain
 * is searched because undici sometimes wraps socket errors.
 */
import { FetchError } from './fetch-error.ts';

/** What the request knew when it failed, to tell a timeout from a caller's cancel. */
export interface FailureContext {
  readonly url: string;
  /** The total-timeout signal of the request. */
  readonly timeout: AbortSignal;
  readonly callerSignal: AbortSignal | undefined;
  readonly totalTimeoutMs: number;
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME']);

export function toFetchError(error: unknown, context: FailureContext): FetchError {
  const { url } = context;
  const found = findInChain(error);
  if (found.fetchError) {
    const f = found.fetchError;
    return new FetchError(f.reason, f.message, {
      url,
      ...(f.status === undefined ? {} : { status: f.status }),
      ...(f.address === undefined ? {} : { address: f.address }),
      cause: error,
    });
  }
  // A caller's cancel wins over the timeout: the caller no longer wants an answer at all.
  if (context.callerSignal?.aborted) return new FetchError('aborted', 'The request was cancelled.', { url, cause: error });
  if (context.timeout.aborted) {
    return new FetchError('timeout', `No complete response within ${context.totalTimeoutMs} ms.`, { url, cause: error });
  }
  const code = found.codes.find((c) => TIMEOUT_CODES.has(c) || DNS_CODES.has(c));
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new FetchError('timeout', 'Could not connect to the host in time.', { url, cause: error });
  }
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new FetchError('timeout', 'The server did not answer in time.', { url, cause: error });
  }
  if (code !== undefined && DNS_CODES.has(code)) {
    return new FetchError('dns', `The host ${hostOf(url)} could not be resolved.`, { url, cause: error });
  }
  const first = found.codes[0];
  const detail = first === undefined ? '' : ` (${first})`;
  return new FetchError('network', `Could not fetch from ${hostOf(url)}${detail}.`, { url, cause: error });
}

function findInChain(error: unknown): { fetchError: FetchError | undefined; codes: string[] } {
  const codes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    if (current instanceof FetchError) return { fetchError: current, codes };
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    current = (current as { cause?: unknown }).cause;
  }
  return { fetchError: undefined, codes };
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the host';
  }
}
