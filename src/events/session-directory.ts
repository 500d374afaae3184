/**
 * Where WebSocket sessions are known across API processes, so a client whose API process died
 * can resume its session (`connectionSessionUUID`) on another one and receive what it missed.
 * In one process the sessions' own buffers do this and the directory is a no-op; scaled out,
 * a Redis adapter keeps each session's open tasks and what reached the client.
 */

/** A session as another process sees it. */
export interface SessionSnapshot {
  readonly apiKeyId: string;
  /** The API process that holds the session now (the last to attach a socket to it), when recorded. */
  readonly owner?: string;
  /** Open tasks of the session (lower-case taskUUID) → keys of the items the client was sent. */
  readonly tasks: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface SessionDirectory {
  /** Whether sessions are shared between processes (false: the no-op directory). */
  readonly shared: boolean;
  /** Records that session `sessionId` of key `apiKeyId` waits for a task; the record lives `ttlMs` after the last call on the session. */
  open(sessionId: string, apiKeyId: string, taskUUID: string, ttlMs: number): Promise<void>;
  /** Records that an item of the task (its imageUUID, or an error key) reached the client. */
  sent(sessionId: string, taskUUID: string, itemKey: string, ttlMs: number): Promise<void>;
  /** Records that API process `owner` holds the session now (a socket attached to it there). */
  claim(sessionId: string, apiKeyId: string, owner: string, ttlMs: number): Promise<void>;
  /** The task is fully answered: the session stops tracking it (unless another process holds the session now). */
  finish(sessionId: string, taskUUID: string, owner: string): Promise<void>;
  /** Keeps the session's records for another `ttlMs` (called while a socket is attached). */
  touch(sessionId: string, ttlMs: number): Promise<void>;
  /** The session, or undefined when unknown or expired. */
  find(sessionId: string): Promise<SessionSnapshot | undefined>;
  close(): Promise<void>;
}

/** `kiln serve`: sessions live only in the process's memory. */
export class LocalSessionDirectory implements SessionDirectory {
  readonly shared = false;
  async open(): Promise<void> {}
  async sent(): Promise<void> {}
  async claim(): Promise<void> {}
  async finish(): Promise<void> {}
  async touch(): Promise<void> {}
  async find(): Promise<SessionSnapshot | undefined> {
    return undefined;
  }
  async close(): Promise<void> {}
}
