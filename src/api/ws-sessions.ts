import type { WebSocket } from 'ws';
import { newUuid } from '../shared/ids.ts';
import type { Principal } from '../tasks/task-service.ts';

/**
 * An authenticated WebSocket session. It outlives its socket for `resumeMs`: frames sent while
 * no socket is attached are buffered and replayed when the client re-authenticates with the
 * same `connectionSessionUUID` (runware-protocol.md §3.4).
 */
export class WsSession {
  socket: WebSocket | undefined;
  private readonly buffer: string[] = [];
  private buffered = 0;
  expiry: NodeJS.Timeout | undefined;
  /** Set when the session expired: later frames (of tasks still running) are dropped. */
  ended = false;

  constructor(
    readonly id: string,
    readonly principal: Principal,
    private readonly maxBufferedBytes: number,
  ) {}

  send(frame: string): void {
    const socket = this.socket;
    if (socket && socket.readyState === socket.OPEN && this.buffer.length === 0) socket.send(frame);
    else if (!this.ended && this.buffered + frame.length <= this.maxBufferedBytes) {
      // Results stay readable through getResponse; the buffer only saves a client the poll.
      this.buffer.push(frame);
      this.buffered += frame.length;
    }
  }

  /** Sends what was buffered while detached (after the authentication answer). */
  flush(): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== socket.OPEN) return;
    for (const frame of this.buffer.splice(0)) socket.send(frame);
    this.buffered = 0;
  }
}

export class WsSessions {
  private readonly sessions = new Map<string, WsSession>();

  constructor(
    private readonly resumeMs: number,
    /** Bytes a detached session may hold for replay. */
    private readonly maxBufferedBytes = 256 * 1024 * 1024,
  ) {}

  /** Attaches a socket to a resumed session (same key only) or to a new one. */
  attach(socket: WebSocket, principal: Principal, resumeId: string | undefined): WsSession {
    let session = resumeId === undefined ? undefined : this.sessions.get(resumeId);
    if (!session || session.principal.apiKeyId !== principal.apiKeyId) {
      session = new WsSession(newUuid(), principal, this.maxBufferedBytes);
      this.sessions.set(session.id, session);
    }
    clearTimeout(session.expiry);
    session.expiry = undefined;
    const previous = session.socket;
    session.socket = socket;
    if (previous && previous !== socket) previous.close(1000, 'session resumed elsewhere');
    // Buffered frames are flushed by the transport once the authentication answer is out.
    return session;
  }

  /** The socket went away: keep the session (and what it is sent) for `resumeMs`. */
  detach(session: WsSession, socket: WebSocket): void {
    if (session.socket !== socket) return;
    session.socket = undefined;
    session.expiry = setTimeout(() => {
      session.ended = true;
      this.sessions.delete(session.id);
    }, this.resumeMs);
    session.expiry.unref();
  }

  close(): void {
    for (const session of this.sessions.values()) clearTimeout(session.expiry);
    this.sessions.clear();
  }
}
