/**
 * The transport port of the Runware engine: one way (WebSocket or REST) to send one task to a
 * Runware-protocol server and read the answer that carries its `taskUUID`.
 */

/** One result item or error object as the upstream sent it (runware-protocol.md §4.3.3, §8.1). */
export type UpstreamObject = Readonly<Record<string, unknown>>;

/** The upstream's answer to one task: the `data` items and `errors` that carry its `taskUUID`. */
export interface UpstreamReply {
  readonly data: readonly UpstreamObject[];
  readonly errors: readonly UpstreamObject[];
}

/** A task to send: any Runware task object with its `taskUUID`. */
export type UpstreamTask = Readonly<Record<string, unknown>> & { readonly taskUUID: string };

export interface SendOptions {
  /** How long to wait for the answer (connecting and authenticating included). */
  readonly timeoutMs: number;
  /** Aborts the wait (the task may still reach the upstream). */
  readonly signal: AbortSignal;
}

/** A client connection to a Runware-protocol server. Owns its sockets; release with `close()`. */
export interface UpstreamTransport {
  readonly kind: 'websocket' | 'rest';
  /**
   * Sends one task and resolves with the first answer that carries its `taskUUID`. Throws
   * `UpstreamUnavailableError` when the upstream cannot be reached or does not answer in time,
   * `UpstreamAuthError` when it refuses the API key, an `AbortError` when `signal` aborts.
   */
  send(task: UpstreamTask, options: SendOptions): Promise<UpstreamReply>;
  close(): Promise<void>;
}

/** The upstream could not be reached, dropped the link, or did not answer in time (retryable). */
export class UpstreamUnavailableError extends Error {
  override readonly name = 'UpstreamUnavailableError';
}

/** The upstream refused the configured API key: an operator error, never the user's. */
export class UpstreamAuthError extends Error {
  override readonly name = 'UpstreamAuthError';
  constructor(readonly upstreamError: UpstreamObject) {
    super(`the upstream refused the API key: ${String(upstreamError.message ?? upstreamError.code ?? 'invalidApiKey')}`);
  }
}

/** The error every abortable wait of this engine throws (what `toApiError` reads as cancelled). */
export function abortError(): Error {
  const error = new Error('The call was aborted.');
  error.name = 'AbortError';
  return error;
}

export function isAbortError(value: unknown): boolean {
  return value instanceof Error && value.name === 'AbortError';
}
