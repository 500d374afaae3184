/**
 * A small Runware WebSocket client for the `kiln` commands: connect, authenticate, send task
 * arrays, and route every answer frame to the task it names. Speaks only standard Runware
 * fields, so it works against Kiln and against the hosted API alike.
 */
import { WebSocket } from 'ws';

/** One item of an `errors` array, as Runware sends it. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly taskUUID?: string;
  readonly taskType?: string;
  readonly parameter?: unknown;
  readonly [field: string]: unknown;
}

/** Why a command could not talk to the server at all (exit code 3). */
export class ConnectionProblem extends Error {
  constructor(message: string, readonly code = 'connectionFailed') {
    super(message);
  }
}

type Item = Record<string, unknown>;
type Listener = (item: Item | undefined, error: WireError | undefined) => void;

/** A live socket after a successful authentication. */
export class RunwareSocket {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly closeWaiters = new Set<(reason: string) => void>();
  private heartbeat: NodeJS.Timeout | undefined;
  private closedReason: string | undefined;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => this.onFrame(data.toString()));
    socket.on('close', (code, reason) => {
      clearInterval(this.heartbeat);
      this.closedReason = `the server closed the connection (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`;
      for (const waiter of this.closeWaiters) waiter(this.closedReason);
    });
    socket.on('error', () => {
      // 'close' follows and reports it.
    });
    // Servers close idle sockets (Kiln after 120 s); a long render sends nothing meanwhile.
    this.heartbeat = setInterval(() => this.send([{ taskType: 'ping', ping: true }]), 30_000);
    this.heartbeat.unref();
  }

  /**
   * Opens the socket and authenticates. Rejects with a `ConnectionProblem` when the server
   * cannot be reached (within `timeoutMs`) or refuses the key (`code` is then Runware's).
   */
  static async open(url: string, apiKey: string, timeoutMs = 10_000): Promise<RunwareSocket> {
    const socket = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs, maxPayload: 512 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      const fail = (message: string): void => {
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.terminate();
        reject(new ConnectionProblem(`cannot reach ${url}: ${message}`));
      };
      socket.once('open', () => {
        socket.removeAllListeners();
        resolve();
      });
      socket.once('error', (error: Error & { code?: string }) => fail(error.code ?? error.message));
      socket.once('unexpected-response', (_request, response) => fail(`HTTP ${response.statusCode}`));
    });
    const client = new RunwareSocket(socket);
    const answer = await client.request([{ taskType: 'authentication', apiKey }], 'authentication', timeoutMs).catch((error: unknown) => {
      client.close();
      throw error instanceof ConnectionProblem ? error : new ConnectionProblem(String(error));
    });
    if (answer.error) {
      client.close();
      throw new ConnectionProblem(`${answer.error.code}: ${answer.error.message}`, answer.error.code);
    }
    return client;
  }

  /** Sends one frame (a task array); quietly does nothing once the socket closed. */
  send(tasks: readonly Item[]): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(tasks));
  }

  /**
   * Calls `listener` for every data item and error naming `key` (a taskUUID, or a taskType for
   * answers without one such as `authentication`) until the returned function is called.
   */
  listen(key: string, listener: Listener): () => void {
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(key);
    };
  }

  /** Resolves with the reason once the socket is closed. */
  whenClosed(): Promise<string> {
    if (this.closedReason !== undefined) return Promise.resolve(this.closedReason);
    return new Promise((resolve) => this.closeWaiters.add(resolve));
  }

  /**
   * Sends `tasks` and resolves with everything answered for `key` in the first frame that
   * names it (a `getResponse` answer is one frame). Rejects with a `ConnectionProblem` when the
   * socket closes or nothing arrives within `timeoutMs`.
   */
  request(tasks: readonly Item[], key: string, timeoutMs = 30_000): Promise<{ items: Item[]; error: WireError | undefined; errors: WireError[] }> {
    return new Promise((resolve, reject) => {
      const items: Item[] = [];
      const errors: WireError[] = [];
      let scheduled = false;
      const done = (): void => {
        stop();
        clearTimeout(timer);
        this.closeWaiters.delete(onClose);
        resolve({ items, error: errors[0], errors });
      };
      // Items of one frame arrive synchronously one after another; resolve after the frame.
      const stop = this.listen(key, (item, error) => {
        if (item) items.push(item);
        if (error) errors.push(error);
        if (!scheduled) {
          scheduled = true;
          queueMicrotask(done);
        }
      });
      const onClose = (reason: string): void => {
        stop();
        clearTimeout(timer);
        reject(new ConnectionProblem(reason));
      };
      const timer = setTimeout(() => {
        stop();
        this.closeWaiters.delete(onClose);
        reject(new ConnectionProblem(`no answer from the server within ${Math.round(timeoutMs / 1000)} s`, 'timeout'));
      }, timeoutMs);
      if (this.closedReason !== undefined) return onClose(this.closedReason);
      this.closeWaiters.add(onClose);
      this.send(tasks);
    });
  }

  close(): void {
    clearInterval(this.heartbeat);
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(1000);
  }

  private onFrame(text: string): void {
    let frame: { data?: unknown; errors?: unknown };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      return;
    }
    const route = (entry: Item, item: Item | undefined, error: WireError | undefined): void => {
      const key = typeof entry.taskUUID === 'string' ? entry.taskUUID.toLowerCase() : typeof entry.taskType === 'string' ? entry.taskType : '';
      for (const listener of [...(this.listeners.get(key) ?? [])]) listener(item, error);
      // An error about a frame as a whole (no taskUUID, no taskType) concerns every waiter.
      if (key === '' && error) for (const set of this.listeners.values()) for (const listener of [...set]) listener(undefined, error);
    };
    if (Array.isArray(frame.data)) for (const item of frame.data as Item[]) if (item && typeof item === 'object') route(item, item, undefined);
    if (Array.isArray(frame.errors)) {
      for (const error of frame.errors as WireError[]) if (error && typeof error === 'object') route(error as unknown as Item, undefined, error);
    }
  }
}
