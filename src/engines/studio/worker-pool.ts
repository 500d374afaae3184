/** A fixed pool of render workers with a FIFO queue; queued jobs honour their AbortSignal. */
import { Worker } from 'node:worker_threads';
import type { RenderJob, RenderRequest, RenderResponse } from './render-job.ts';

export interface RenderOutput {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly millis: number;
}

interface Pending {
  readonly id: number;
  readonly job: RenderJob;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (output: RenderOutput) => void;
  readonly reject: (error: Error) => void;
  readonly onStart: (() => void) | undefined;
  readonly cleanup: () => void;
}

interface Slot {
  readonly worker: Worker;
  current: Pending | undefined;
}

export function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  const error = new Error('The render was aborted');
  error.name = 'AbortError';
  return error;
}

/**
 * Starts the worker file next to this module. Compiled (`.js`) it is loaded directly. Under tsx
 * (`.ts`), Node 20 does not apply the inherited `--import tsx` hooks to a worker's entry module,
 * so a two-line bootstrap registers tsx inside the worker first, then imports the entry.
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./render-worker.js', import.meta.url));
  const entry = new URL('./render-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true });
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = startWorker();
    const slot: Slot = { worker, current: undefined };
    worker.on('message', (message: RenderResponse) => this.onMessage(slot, message));
    worker.on('error', (error) => this.onCrash(slot, error));
    worker.unref();
    return slot;
  }

  /** Renders `job` on the next free worker. `onStart` fires when a worker picks it up. */
  render(job: RenderJob, signal?: AbortSignal, onStart?: () => void): Promise<RenderOutput> {
    if (this.closed) return Promise.reject(new Error('The studio worker pool is closed'));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<RenderOutput>((resolve, reject) => {
      const id = this.nextId++;
      const onAbort = (): void => {
        const index = this.queue.findIndex((p) => p.id === id);
        // Only queued jobs are dropped; a render already running finishes (it takes well under a second).
        if (index >= 0) {
          this.queue.splice(index, 1);
          reject(abortError(signal));
        }
      };
      const cleanup = (): void => signal?.removeEventListener('abort', onAbort);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push({ id, job, signal, resolve, reject, onStart, cleanup });
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.current || this.queue.length === 0) continue;
      const next = this.queue.shift()!;
      slot.current = next;
      slot.worker.ref();
      slot.worker.postMessage({ id: next.id, job: next.job } satisfies RenderRequest);
    }
  }

  private onMessage(slot: Slot, message: RenderResponse): void {
    const pending = slot.current;
    if (!pending || pending.id !== message.id) return;
    if (message.type === 'started') {
      pending.onStart?.();
      return;
    }
    slot.current = undefined;
    slot.worker.unref();
    pending.cleanup();
    if (message.type === 'done') {
      if (pending.signal?.aborted) pending.reject(abortError(pending.signal));
      else pending.resolve({ data: new Uint8Array(message.buffer), width: message.width, height: message.height, millis: message.millis });
    } else {
      pending.reject(new Error(`studio render failed: ${message.message}`));
    }
    this.pump();
  }

  private onCrash(slot: Slot, error: Error): void {
    const pending = slot.current;
    slot.current = undefined;
    pending?.cleanup();
    pending?.reject(error);
    const index = this.slots.indexOf(slot);
    void slot.worker.terminate();
    if (!this.closed && index >= 0) this.slots[index] = this.spawn();
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const pending of this.queue.splice(0)) {
      pending.cleanup();
      pending.reject(new Error('The studio worker pool is closed'));
    }
    await Promise.all(this.slots.map(async (slot) => {
      slot.current?.cleanup();
      slot.current?.reject(new Error('The studio worker pool is closed'));
      slot.current = undefined;
      await slot.worker.terminate();
    }));
  }
}
