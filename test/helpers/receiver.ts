import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

/**
 * A real HTTP server on 127.0.0.1 that records every request and answers with `respond`
 * (return a status; `'hang'` to never answer; `'drip'` to answer 200 and then send a body that never ends).
 */
export class Receiver {
  readonly requests: Received[] = [];
  private waiters: { count: number; filter: (r: Received) => boolean; resolve: () => void }[] = [];
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(respond: (request: Received, index: number) => number | 'hang' | 'drip'): Promise<Receiver> {
    let receiver!: Receiver;
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const received = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks) };
        const index = receiver.requests.push(received) - 1;
        const answer = respond(received, index);
        if (answer === 'hang') receiver.hanging.add(response);
        else if (answer === 'drip') {
          receiver.hanging.add(response);
          response.writeHead(200, { 'content-type': 'application/octet-stream' });
          const timer = setInterval(() => response.write(Buffer.alloc(64 * 1024, 1)), 20);
          response.on('close', () => clearInterval(timer));
        } else response.writeHead(answer, { 'content-type': 'text/plain' }).end(answer < 300 ? 'ok' : 'no');
        receiver.notify();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    receiver = new Receiver(server, `http://127.0.0.1:${port}`);
    return receiver;
  }

  /** Resolves once `count` recorded requests match `filter`. */
  waitFor(count: number, filter: (r: Received) => boolean = () => true, timeoutMs = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${count} requests (have ${this.requests.filter(filter).length})`)), timeoutMs);
      this.waiters.push({ count, filter, resolve: () => { clearTimeout(timer); resolve(); } });
      this.notify();
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) {
      if (this.requests.filter(waiter.filter).length >= waiter.count) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }

  async close(): Promise<void> {
    for (const response of this.hanging) response.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
