import type { WebSocket } from 'ws';
import type { SessionDirectory, SessionSnapshot } from '../events/session-directory.ts';
import { newUuid } from '../shared/ids.ts';
import type { Logger } from '../shared/logger.ts';
import type { Principal } from '../tasks/task-service.ts';

/** What a frame is about, so the session directory can record that it reached the client. */
export interface FrameTag {
  readonly taskUUID: string;
  /** The item's key: its imageUUID, or `error#n` for the n-th error of the task. */
  readonly key: string;
}

/**
 * An authenticated WebSocket session. It outlives its socket for `resumeMs`: frames sent while
 * no socket is attached are buffered and replayed when the client re-authenticates with the
 * same `connectionSessionUUID` (runware-protocol.md §3.4). When sessions are shared across API
 * processes, what reached the client is also recorded in the session directory, so another
 * process can take the session over if this one dies.
 */
export class WsSession {
  socket: WebSocket | undefined;
  private readonly buffer: { frame: string; tag: FrameTag | undefined }[] = [];
  private buffered = 0;
  /** Frames dropped from the buffer (oldest first) since the client last heard of it. */
  private dropped = 0;
  private readonly errorCounts = new Map<string, number>();
  expiry: NodeJS.Timeout | undefined;
  /** Set when the session expired: later frames (of tasks still running) are dropped. */
  ended = false;

  constructor(
    readonly id: string,
    readonly principal: Principal,
    private readonly maxBufferedBytes: number,
    private readonly onSent: (session: WsSession, tag: FrameTag) => void,
    /** Bytes queued on the socket (the client not reading) past which it is cut off. */
    private readonly maxSocketBufferedBytes: number = Number.POSITIVE_INFINITY,
  ) {}

  /** Sync tasks this session waits for (lower case): only their frames are tracked for a takeover. */
  readonly waiting = new Set<string>();

  /** Nothing to resume: no wait open, no frame kept. */
  get idle(): boolean {
    return this.waiting.size === 0 && this.buffer.length === 0;
  }

  /** The tag of a result frame, when the session waits for its task. */
  resultTag(taskUUID: string, imageUUID: string): FrameTag | undefined {
    const key = taskUUID.toLowerCase();
    return this.waiting.has(key) ? { taskUUID: key, key: imageUUID } : undefined;
  }

  /** The tag of the next error frame of a task the session waits for (`error#n`, counted per task). */
  errorTag(taskUUID: string): FrameTag | undefined {
    const key = taskUUID.toLowerCase();
    if (!this.waiting.has(key)) return undefined;
    const n = this.errorCounts.get(key) ?? 0;
    this.errorCounts.set(key, n + 1);
    return { taskUUID: key, key: `error#${n}` };
  }

  /** A session taken over from another process: its error items go on numbering where the other left off. */
  continueErrors(taskUUID: string, sentKeys: ReadonlySet<string>): void {
    const count = [...sentKeys].filter((key) => key.startsWith('error#')).length;
    if (count > 0) this.errorCounts.set(taskUUID.toLowerCase(), count);
  }

  send(frame: string, tag?: FrameTag): void {
    const socket = this.socket;
    if (socket && socket.readyState === socket.OPEN && this.buffer.length === 0) {
      // A client that does not read is cut off rather than buffered without bound: what counts
      // is the backlog it left unread, not the size of this frame (one poll of four 4K images
      // in base64 is larger than the cap and must still go to a client that reads). The frame
      // then waits in the (bounded) resume buffer like any frame of a detached session.
      if (socket.bufferedAmount <= this.maxSocketBufferedBytes) {
        this.write(socket, frame, tag);
        return;
      }
      socket.terminate();
    }
    this.keep(frame, tag);
  }

  /**
   * Keeps a frame for the resume, within `maxBufferedBytes`: the oldest frames make room and
   * are counted, so the resumed client is told (`droppedFrames`). Results stay readable through
   * getResponse; the buffer only saves a client the poll.
   */
  private keep(frame: string, tag: FrameTag | undefined): void {
    if (this.ended) return;
    if (frame.length > this.maxBufferedBytes) {
      this.dropped++;
      return;
    }
    this.buffer.push({ frame, tag });
    this.buffered += frame.length;
    while (this.buffered > this.maxBufferedBytes) {
      const oldest = this.buffer.shift();
      if (!oldest) break;
      this.buffered -= oldest.frame.length;
      this.dropped++;
    }
  }

  /** How many frames were dropped since the last call (0 when none). */
  takeDropped(): number {
    const dropped = this.dropped;
    this.dropped = 0;
    return dropped;
  }

  /** Sends what was buffered while detached (after the authentication answer). */
  flush(): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== socket.OPEN) return;
    for (const { frame, tag } of this.buffer.splice(0)) this.write(socket, frame, tag);
    this.buffered = 0;
  }

  private write(socket: WebSocket, frame: string, tag: FrameTag | undefined): void {
    // Recorded once the frame has left for the kernel, not when it was queued.
    socket.send(frame, (error) => {
      if (!error && tag) this.onSent(this, tag);
    });
  }
}

export interface WsSessionsOptions {
  readonly resumeMs: number;
  readonly directory: SessionDirectory;
  readonly logger: Logger;
  /** Bytes a detached session may hold for replay (oldest dropped first). Default 8 MB. */
  readonly maxBufferedBytes?: number;
  /** Bytes queued on a socket its client does not read, past which it is cut off. Default 16 MB. */
  readonly maxSocketBufferedBytes?: number;
}

export class WsSessions {
  private readonly sessions = new Map<string, WsSession>();
  private readonly keeper: NodeJS.Timeout | undefined;
  /** This process, as the session directory names the holder of a session. */
  private readonly owner = newUuid();

  constructor(private readonly options: WsSessionsOptions) {
    // Shared records expire `resumeMs` after their last write: a session whose wait outlasts
    // that without a frame (a long queue, a slow render) must stay findable should this process
    // die, so the living sessions' records are kept fresh (a dead process's then lapse at least
    // three quarters of `resumeMs` after it died).
    if (options.directory.shared) {
      this.keeper = setInterval(() => this.keepRecords(), Math.max(250, Math.floor(options.resumeMs / 4)));
      this.keeper.unref();
    }
  }

  private keepRecords(): void {
    for (const session of this.sessions.values()) {
      if (session.ended) continue;
      this.options.directory.touch(session.id, this.options.resumeMs).catch((error: unknown) => {
        this.options.logger.warn({ err: error, session: session.id }, 'could not keep a session record fresh');
      });
    }
  }

  /**
   * Attaches a socket to a resumed session (same key only) or to a new one. A session unknown
   * here but known to the shared directory (its API process died) is taken over: `adopted`
   * then lists its open tasks and what the client already has.
   */
  async attach(
    socket: WebSocket,
    principal: Principal,
    resumeId: string | undefined,
  ): Promise<{ session: WsSession; adopted: SessionSnapshot | undefined }> {
    let session = resumeId === undefined ? undefined : this.sessions.get(resumeId);
    let adopted: SessionSnapshot | undefined;
    if (resumeId !== undefined && this.options.directory.shared) {
      const found = await this.options.directory.find(resumeId).catch((error: unknown) => {
        this.options.logger.warn({ err: error }, session ? 'session directory unavailable; resuming the local session' : 'session directory unavailable; starting a new session');
        return undefined;
      });
      // Held by another process since this one last had it (the client reconnected there, then
      // came back): this copy is stale, and the session is taken back from the directory.
      if (session && found?.owner !== undefined && found.owner !== this.owner && found.apiKeyId === principal.apiKeyId) {
        this.retire(session);
        session = undefined;
      }
      if (!session && found && found.apiKeyId === principal.apiKeyId) {
        adopted = found;
        session = this.create(resumeId, principal);
        for (const [taskUUID, sent] of found.tasks) session.continueErrors(taskUUID, sent);
      }
    }
    if (!session || session.principal.apiKeyId !== principal.apiKeyId) {
      session = this.create(newUuid(), principal);
      adopted = undefined;
    }
    clearTimeout(session.expiry);
    session.expiry = undefined;
    const previous = session.socket;
    session.socket = socket;
    if (previous && previous !== socket) previous.close(1000, 'session resumed elsewhere');
    // This process holds the session now; another that held it finds that out when the client
    // comes back to it (and stops tidying the session's records).
    if (this.options.directory.shared) await this.options.directory.claim(session.id, principal.apiKeyId, this.owner, this.options.resumeMs);
    // Buffered frames are flushed by the transport once the authentication answer is out.
    return { session, adopted };
  }

  /** The session starts waiting for a sync task (recorded for a takeover by another process). */
  opened(session: WsSession, taskUUID: string): void {
    session.waiting.add(taskUUID.toLowerCase());
    void this.options.directory.open(session.id, session.principal.apiKeyId, taskUUID, this.options.resumeMs);
  }

  /** The session's wait for a task is over. */
  closed(session: WsSession, taskUUID: string): void {
    session.waiting.delete(taskUUID.toLowerCase());
    // A retired copy's waits end without the client: the records stay for the session's holder.
    if (!session.ended) void this.options.directory.finish(session.id, taskUUID, this.owner);
  }

  /** Drops a stale local copy of a session now held elsewhere: what its waits still send goes nowhere. */
  private retire(session: WsSession): void {
    session.ended = true;
    clearTimeout(session.expiry);
    session.expiry = undefined;
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    session.socket?.close(1000, 'session resumed elsewhere');
    session.socket = undefined;
  }

  /**
   * The socket went away: keep the session (and what it is sent) for `resumeMs`. With
   * `endIfIdle` (the socket authenticated again, into another session) a session with nothing
   * to resume ends at once, so re-authenticating in a loop cannot pile sessions up.
   */
  detach(session: WsSession, socket: WebSocket, endIfIdle = false): void {
    if (session.socket !== socket) return;
    session.socket = undefined;
    if (endIfIdle && session.idle) {
      session.ended = true;
      if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
      return;
    }
    session.expiry = setTimeout(() => {
      session.ended = true;
      this.sessions.delete(session.id);
    }, this.options.resumeMs);
    session.expiry.unref();
  }

  /**
   * Ends the sessions of keys that are no longer valid (revoked): their sockets are closed with
   * `1008 API key revoked` and nothing is kept for a resume.
   */
  async closeRevoked(isActive: (apiKeyId: string) => Promise<boolean>): Promise<number> {
    const verdicts = new Map<string, boolean>();
    let closed = 0;
    for (const session of [...this.sessions.values()]) {
      const id = session.principal.apiKeyId;
      if (!verdicts.has(id)) verdicts.set(id, await isActive(id).catch(() => true));
      if (verdicts.get(id)) continue;
      session.ended = true;
      clearTimeout(session.expiry);
      this.sessions.delete(session.id);
      session.socket?.close(1008, 'API key revoked');
      closed++;
    }
    return closed;
  }

  close(): void {
    clearInterval(this.keeper);
    for (const session of this.sessions.values()) clearTimeout(session.expiry);
    this.sessions.clear();
  }

  private create(id: string, principal: Principal): WsSession {
    const session = new WsSession(
      id,
      principal,
      this.options.maxBufferedBytes ?? 8 * 1024 * 1024,
      (s, tag) => {
        void this.options.directory.sent(s.id, tag.taskUUID, tag.key, this.options.resumeMs);
      },
      this.options.maxSocketBufferedBytes ?? 16 * 1024 * 1024,
    );
    this.sessions.set(id, session);
    return session;
  }
}
