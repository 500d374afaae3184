import { WebSocket, type RawData } from 'ws';
import type { Logger } from '../../shared/logger.ts';
import { backoffDelay, sleep } from './backoff.ts';
import {
  abortError,
  UpstreamAuthError,
  UpstreamUnavailableError,
  type SendOptions,
  type UpstreamObject,
  type UpstreamReply,
  type UpstreamTask,
  type UpstreamTransport,
} from './upstream-transport.ts';

export interface WsTransportOptions {
  /** `ws://` or `wss://` URL of the upstream, e.g. `wss://ws-api.runware.ai/v1`. */
  readonly url: string;
  readonly apiKey: string;
  readonly logger: Logger;
  /** Ping period once authenticated; default 30 s (the upstream drops a link idle for 120 s). */
  readonly heartbeatMs?: number;
  /** A ping not answered within this counts the link as dead; default 10 s. */
  readonly pongTimeoutMs?: number;
  /** First reconnect delay after a failed connection; doubles (with jitter) up to `reconnectMaxMs`. Default 250 ms. */
  readonly reconnectBaseMs?: number;
  /** Default 10 s. */
  readonly reconnectMaxMs?: number;
  /** Largest frame accepted; default 512 MiB. */
  readonly maxPayloadBytes?: number;
}

interface Waiter {
  resolve(reply: UpstreamReply): void;
  reject(error: Error): void;
}

interface Link {
  readonly socket: WebSocket;
  heartbeat?: NodeJS.Timeout | undefined;
  pongTimer?: NodeJS.Timeout | undefined;
  authWaiter?: Waiter | undefined;
}

/**
 * One long-lived, authenticated WebSocket to the upstream, shared by every call of the process
 * and multiplexed by `taskUUID` (runware-protocol.md §3). It connects lazily on first use,
 * pings every `heartbeatMs` and treats a missed pong as a dead link, and after a drop reconnects
 * on the next use (spaced by exponential backoff with jitter) and re-authenticates with the
 * previous `connectionSessionUUID` so the upstream can replay what it buffered. Requests in
 * flight when the link drops fail with `UpstreamUnavailableError`; callers retry them (every
 * task this engine sends is idempotent by `taskUUID`).
 */
export class WsTransport implements UpstreamTransport {
  readonly kind = 'websocket';
  private link: Link | undefined;
  private connecting: Promise<Link> | undefined;
  private sessionUUID: string | undefined;
  private failures = 0;
  private lastFailureAt = 0;
  private closed = false;
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly heartbeatMs: number;
  private readonly pongTimeoutMs: number;
  private readonly reconnectBaseMs: number;
  private readonly reconnectMaxMs: number;

  constructor(private readonly options: WsTransportOptions) {
    this.heartbeatMs = options.heartbeatMs ?? 30_000;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 10_000;
    this.reconnectBaseMs = options.reconnectBaseMs ?? 250;
    this.reconnectMaxMs = options.reconnectMaxMs ?? 10_000;
  }

  /** The session the upstream gave at the last authentication (kept across reconnects). */
  get connectionSessionUUID(): string | undefined {
    return this.sessionUUID;
  }

  async send(task: UpstreamTask, { timeoutMs, signal }: SendOptions): Promise<UpstreamReply> {
    if (this.closed) throw new UpstreamUnavailableError('the upstream connection is closed');
    if (signal.aborted) throw abortError();
    const deadline = Date.now() + timeoutMs;
    const link = await this.withDeadline(this.connection(), deadline, signal);
    return new Promise<UpstreamReply>((resolve, reject) => {
      const set = this.waiters.get(task.taskUUID) ?? new Set<Waiter>();
      this.waiters.set(task.taskUUID, set);
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        set.delete(waiter);
        if (set.size === 0 && this.waiters.get(task.taskUUID) === set) this.waiters.delete(task.taskUUID);
      };
      const waiter: Waiter = {
        resolve: (reply) => (done(), resolve(reply)),
        reject: (error) => (done(), reject(error)),
      };
      const onAbort = (): void => waiter.reject(abortError());
      const timer = setTimeout(
        () => waiter.reject(new UpstreamUnavailableError(`no answer from the upstream within ${timeoutMs} ms`)),
        Math.max(1, deadline - Date.now()),
      );
      signal.addEventListener('abort', onAbort, { once: true });
      set.add(waiter);
      link.socket.send(JSON.stringify([task]), (error) => {
        if (error) waiter.reject(new UpstreamUnavailableError(`sending to the upstream failed: ${error.message}`));
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const link = this.link;
    this.link = undefined;
    if (link) {
      this.stopHeartbeat(link);
      link.socket.close(1000, 'closing');
      // Give the close handshake a moment, then make sure the socket is gone.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => (link.socket.terminate(), resolve()), 1_000);
        timer.unref();
        link.socket.once('close', () => (clearTimeout(timer), resolve()));
      });
    }
    this.failAll(new UpstreamUnavailableError('the upstream connection is closed'));
  }

  /** The authenticated link, connecting (after the backoff delay of previous failures) if needed. */
  private connection(): Promise<Link> {
    if (this.link && this.link.socket.readyState === this.link.socket.OPEN) return Promise.resolve(this.link);
    // A link that is closing (terminated after a missed pong, close event not yet fired) is dead already.
    if (this.link) this.onClose(this.link, 1006);
    this.connecting ??= (async () => {
      try {
        if (this.failures > 0) {
          const wait = this.lastFailureAt + backoffDelay(this.failures, this.reconnectBaseMs, this.reconnectMaxMs) - Date.now();
          // The shared attempt must not be cut short by one caller's abort: use a detached signal.
          if (wait > 0) await sleep(wait, new AbortController().signal);
        }
        if (this.closed) throw new UpstreamUnavailableError('the upstream connection is closed');
        const link = await this.connect();
        this.failures = 0;
        return link;
      } catch (error) {
        this.failures++;
        this.lastFailureAt = Date.now();
        throw error;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private connect(): Promise<Link> {
    return new Promise<Link>((resolve, reject) => {
      const socket = new WebSocket(this.options.url, {
        perMessageDeflate: false,
        handshakeTimeout: this.pongTimeoutMs,
        // A poll answer repeats every finished image in base64: 20 4K PNGs exceed ws's 100 MiB default.
        maxPayload: this.options.maxPayloadBytes ?? 512 * 1024 * 1024,
      });
      const link: Link = { socket };
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        socket.terminate();
        reject(error);
      };
      const authTimer = setTimeout(
        () => fail(new UpstreamUnavailableError('the upstream did not answer the authentication in time')),
        this.pongTimeoutMs * 2,
      );
      link.authWaiter = {
        resolve: (reply) => {
          clearTimeout(authTimer);
          const item = reply.data[0];
          const session = item?.connectionSessionUUID;
          if (typeof session !== 'string' || session === '') {
            fail(new UpstreamUnavailableError('the upstream answered the authentication without a connectionSessionUUID'));
            return;
          }
          if (this.sessionUUID !== undefined && session !== this.sessionUUID) {
            this.options.logger.info({ previous: this.sessionUUID, session }, 'runware upstream started a new session');
          }
          this.sessionUUID = session;
          settled = true;
          link.authWaiter = undefined;
          if (this.closed) {
            socket.close();
            reject(new UpstreamUnavailableError('the upstream connection is closed'));
            return;
          }
          this.link = link;
          this.startHeartbeat(link);
          resolve(link);
        },
        reject: (error) => {
          clearTimeout(authTimer);
          if (error instanceof UpstreamAuthError) this.sessionUUID = undefined;
          fail(error);
        },
      };
      socket.on('open', () => {
        const auth: Record<string, unknown> = { taskType: 'authentication', apiKey: this.options.apiKey };
        if (this.sessionUUID !== undefined) auth.connectionSessionUUID = this.sessionUUID;
        socket.send(JSON.stringify([auth]));
      });
      socket.on('message', (data: RawData, isBinary: boolean) => this.onFrame(link, data, isBinary));
      socket.on('error', (error) => {
        this.options.logger.debug({ err: error }, 'runware upstream socket error');
        fail(new UpstreamUnavailableError(`cannot reach the upstream: ${error.message}`));
      });
      socket.on('close', (code) => {
        clearTimeout(authTimer);
        fail(new UpstreamUnavailableError(`the upstream closed the connection (${code}) during authentication`));
        this.onClose(link, code);
      });
    });
  }

  private onFrame(link: Link, data: RawData, isBinary: boolean): void {
    if (isBinary) return;
    let frame: unknown;
    try {
      frame = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
    } catch {
      this.options.logger.warn('runware upstream sent a frame that is not JSON; ignored');
      return;
    }
    const envelope = (frame ?? {}) as { data?: unknown; errors?: unknown };
    const items = Array.isArray(envelope.data) ? (envelope.data as UpstreamObject[]) : envelope.data && typeof envelope.data === 'object' ? [envelope.data as UpstreamObject] : [];
    const errors = Array.isArray(envelope.errors) ? (envelope.errors as UpstreamObject[]) : [];
    // Group by the routing key sdk-js uses: taskUUID, else taskType (authentication, ping).
    const byKey = new Map<string, { data: UpstreamObject[]; errors: UpstreamObject[] }>();
    const entry = (item: UpstreamObject): { data: UpstreamObject[]; errors: UpstreamObject[] } => {
      const key = String(item.taskUUID ?? item.taskType ?? '');
      let found = byKey.get(key);
      if (!found) byKey.set(key, (found = { data: [], errors: [] }));
      return found;
    };
    for (const item of items) if (item && typeof item === 'object') entry(item).data.push(item);
    for (const error of errors) if (error && typeof error === 'object') entry(error).errors.push(error);
    for (const [key, reply] of byKey) {
      if (key === 'ping') {
        if (link.pongTimer) clearTimeout(link.pongTimer);
        link.pongTimer = undefined;
        continue;
      }
      if (key === 'authentication') {
        const auth = link.authWaiter;
        if (!auth) continue;
        const error = reply.errors[0];
        if (error) {
          auth.reject(error.code === 'invalidApiKey' ? new UpstreamAuthError(error) : new UpstreamUnavailableError(`authentication failed: ${String(error.message ?? error.code)}`));
        } else auth.resolve(reply);
        continue;
      }
      const waiter = this.waiters.get(key)?.values().next().value;
      if (waiter) waiter.resolve(reply);
      else if (reply.errors.length > 0 && key === '') this.options.logger.warn({ errors: reply.errors }, 'runware upstream sent errors for no task');
      else this.options.logger.debug({ taskUUID: key }, 'runware upstream answer with no waiter (late or replayed); ignored');
    }
  }

  private onClose(link: Link, code: number): void {
    this.stopHeartbeat(link);
    if (this.link !== link) return;
    this.link = undefined;
    if (!this.closed) this.options.logger.warn({ code }, 'runware upstream connection dropped; it reconnects on next use');
    this.failAll(new UpstreamUnavailableError(`the upstream connection dropped (${code})`));
  }

  private startHeartbeat(link: Link): void {
    link.heartbeat = setInterval(() => {
      if (link.pongTimer) return;
      link.pongTimer = setTimeout(() => {
        this.options.logger.warn({ pongTimeoutMs: this.pongTimeoutMs }, 'runware upstream missed a pong; dropping the link');
        link.socket.terminate();
      }, this.pongTimeoutMs);
      link.socket.send(JSON.stringify([{ taskType: 'ping', ping: true }]));
    }, this.heartbeatMs);
    link.heartbeat.unref();
  }

  private stopHeartbeat(link: Link): void {
    if (link.heartbeat) clearInterval(link.heartbeat);
    if (link.pongTimer) clearTimeout(link.pongTimer);
    link.heartbeat = undefined;
    link.pongTimer = undefined;
  }

  private failAll(error: Error): void {
    for (const set of [...this.waiters.values()]) for (const waiter of [...set]) waiter.reject(error);
  }

  private async withDeadline<T>(promise: Promise<T>, deadline: number, signal: AbortSignal): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new UpstreamUnavailableError('could not connect to the upstream in time')), Math.max(1, deadline - Date.now()));
          onAbort = () => reject(abortError());
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }
}
