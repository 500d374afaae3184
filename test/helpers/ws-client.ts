import { WebSocket } from 'ws';

/** A raw `ws` client that records every frame and waits for the ones a test expects. */
export class RawWsClient {
  readonly frames: any[] = [];
  private waiters: { predicate: (frame: any) => boolean; resolve: (frame: any) => void }[] = [];
  closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      this.frames.push(frame);
      for (const waiter of [...this.waiters]) {
        if (waiter.predicate(frame)) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          waiter.resolve(frame);
        }
      }
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** `answerPings: false` makes a peer that has gone silent without closing (no pong to the server's pings). */
  static async connect(url: string, options: { answerPings?: boolean } = {}): Promise<RawWsClient> {
    const socket = new WebSocket(url, { perMessageDeflate: false, autoPong: options.answerPings ?? true });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new RawWsClient(socket);
  }

  send(tasks: unknown): void {
    this.socket.send(typeof tasks === 'string' ? tasks : JSON.stringify(tasks));
  }

  /** Resolves with the first frame (already received or future) that matches. */
  next(predicate: (frame: any) => boolean, timeoutMs = 30_000): Promise<any> {
    const seen = this.frames.find(predicate);
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for a frame')), timeoutMs);
      this.waiters.push({
        predicate,
        resolve: (frame) => {
          clearTimeout(timer);
          this.frames.splice(this.frames.indexOf(frame), 1);
          resolve(frame);
        },
      });
    });
  }

  /** Frames that carry `taskUUID` in data or errors. */
  forTask(taskUUID: string): (frame: any) => boolean {
    return (frame) =>
      [...(frame.data ?? []), ...(frame.errors ?? [])].some((item: any) => item.taskUUID === taskUUID);
  }

  async authenticate(apiKey: string, connectionSessionUUID?: string): Promise<any> {
    this.send([{ taskType: 'authentication', apiKey, ...(connectionSessionUUID ? { connectionSessionUUID } : {}) }]);
    return this.next((f) => [...(f.data ?? []), ...(f.errors ?? [])].some((i: any) => i.taskType === 'authentication'));
  }

  close(): void {
    this.socket.close();
  }
}
