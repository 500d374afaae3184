import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { deferred, type Deferred } from '../../shared/deferred.ts';
import { workerEntry } from '../../shared/worker-entry.ts';
import type { ClassifyRequest, NsfwProbabilities, WorkerMessage, WorkerOptions } from './safety-protocol.ts';

/** What the worker returns for one image. */
export interface WorkerVerdict {
  readonly probabilities: NsfwProbabilities;
  readonly inferenceMs: number;
}

interface Job {
  readonly id: number;
  readonly pixels: Uint8Array;
  readonly done: Deferred<WorkerVerdict>;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * Owns the one classifier worker: starts it lazily, feeds it one image at a time (FIFO), keeps
 * the process alive only while work is pending, and restarts it on the next request if it dies.
 */
export class WorkerClient {
  private worker: Worker | undefined;
  private ready: Deferred<void> | undefined;
  private isReady = false;
  private readonly queue: Job[] = [];
  private active: Job | undefined;
  private nextId = 1;
  private closing: Promise<void> | undefined;
  private idle: Deferred<void> | undefined;

  constructor(
    private readonly options: { readonly warmUpRuns: number; readonly onReady?: (info: { loadMs: number; backend: string }) => void },
  ) {}

  /** Starts the worker if needed and resolves once the model is loaded and warm. */
  start(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new Error('safety classifier is closed'));
    if (this.ready === undefined) this.spawn();
    return this.ready!.promise;
  }

  run(pixels: Uint8Array, signal?: AbortSignal): Promise<WorkerVerdict> {
    if (this.closing !== undefined) return Promise.reject(new Error('safety classifier is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const done = deferred<WorkerVerdict>();
    const job: Job = {
      id: this.nextId++,
      pixels,
      done,
      signal,
      onAbort: () => {
        // A queued job leaves the queue; a running one finishes in the worker, unobserved.
        const index = this.queue.indexOf(job);
        if (index >= 0) this.queue.splice(index, 1);
        done.reject(signal?.reason);
        this.settleIdle();
      },
    };
    signal?.addEventListener('abort', job.onAbort, { once: true });
    this.queue.push(job);
    this.start().catch(() => {}); // a load failure rejects the queued jobs through fail()
    this.pump();
    return done.promise;
  }

  /** Lets accepted jobs finish (at most `drainMs`), fails the rest, then terminates the worker. */
  close(drainMs: number): Promise<void> {
    this.closing ??= this.shutdown(drainMs);
    return this.closing;
  }

  private async shutdown(drainMs: number): Promise<void> {
    if (this.active !== undefined || this.queue.length > 0) {
      this.idle = deferred();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      });
      await Promise.race([this.idle.promise, timeout]);
      clearTimeout(timer);
    }
    const worker = this.worker;
    this.fail(new Error('safety classifier closed before the check finished'));
    if (worker !== undefined) await worker.terminate();
  }

  private spawn(): void {
    const ready = deferred<void>();
    ready.promise.catch(() => {}); // observed through start() or fail()
    this.ready = ready;
    this.isReady = false;
    // The compiled safety-worker.js (from the build), or the .ts one through a tsx bootstrap.
    const entry = workerEntry(import.meta.url, 'safety-worker');
    const options: WorkerOptions = { wasmDirectory: wasmDirectory(), warmUpRuns: this.options.warmUpRuns };
    const worker = new Worker(entry.filename, {
      eval: entry.eval,
      // From the build the worker gets the parent's flags (--enable-source-maps, …); see WorkerEntry.execArgv.
      ...(entry.execArgv ? { execArgv: entry.execArgv } : {}),
      workerData: { options },
    });
    this.worker = worker;
    worker.on('message', (message: WorkerMessage) => this.onMessage(message));
    worker.on('error', (error) => {
      if (this.worker === worker) this.fail(new Error(`safety classifier worker failed: ${error.message}`, { cause: error }));
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.fail(new Error(`safety classifier worker exited with code ${code}`));
    });
  }

  private onMessage(message: WorkerMessage): void {
    if (message.type === 'ready') {
      this.isReady = true;
      this.options.onReady?.({ loadMs: message.loadMs, backend: message.backend });
      this.ready?.resolve();
      this.pump();
      return;
    }
    const job = this.active;
    if (job === undefined || job.id !== message.id) return;
    this.active = undefined;
    job.signal?.removeEventListener('abort', job.onAbort);
    if (message.type === 'result') {
      job.done.resolve({ probabilities: message.probabilities, inferenceMs: message.inferenceMs });
    } else {
      job.done.reject(new Error(`safety classification failed: ${message.message}`));
    }
    this.pump();
  }

  /** Sends the next job when the worker is ready and free; refs the worker only while busy. */
  private pump(): void {
    const worker = this.worker;
    if (worker === undefined) return;
    if (this.isReady && this.active === undefined) {
      const job = this.queue.shift();
      if (job !== undefined) {
        this.active = job;
        const request: ClassifyRequest = { type: 'classify', id: job.id, pixels: job.pixels };
        worker.postMessage(request);
      }
    }
    const busy = !this.isReady || this.active !== undefined || this.queue.length > 0;
    if (busy) worker.ref();
    else worker.unref();
    this.settleIdle();
  }

  private settleIdle(): void {
    if (this.active === undefined && this.queue.length === 0) this.idle?.resolve();
  }

  /** The worker is gone (or going): fail everything pending; the next request starts a new one. */
  private fail(error: Error): void {
    const pending = [...(this.active === undefined ? [] : [this.active]), ...this.queue.splice(0)];
    this.active = undefined;
    this.worker = undefined;
    this.ready?.reject(error);
    this.ready = undefined;
    this.isReady = false;
    for (const job of pending) {
      job.signal?.removeEventListener('abort', job.onAbort);
      job.done.reject(error);
    }
    this.settleIdle();
  }
}

function wasmDirectory(): string {
  const require = createRequire(import.meta.url);
  // The package's "main" lives in dist/, beside the .wasm binaries.
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
}
