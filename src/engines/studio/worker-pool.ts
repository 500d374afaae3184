/**
 * A fixed pool of render workers with a FIFO queue; queued jobs honour their AbortSignal.
 *
 * A large image that finds the pool free is split into vertical strips, one per free worker, that
 * render at once straight into one shared buffer (the renderer draws a strip byte for byte as the
 * whole image has it). Images that arrive together, or while the workers are busy with other whole
 * images, render whole, one per worker, which is the cheapest way to keep every core busy.
 */
import { Worker } from 'node:worker_threads';
import { workerEntry } from '../../shared/worker-entry.ts';
import { stripBounds } from './renderer.ts';
import type { RenderJob, RenderRequest, RenderResponse } from './render-job.ts';

export interface RenderOutput {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** The longest time a worker spent on it (rendering only, no queueing). */
  readonly millis: number;
  /** How many workers drew it (1: whole, on one worker). */
  readonly strips: number;
}

export interface WorkerPoolOptions {
  /** Images of at least this many pixels are split when two or more workers are free; default 1 MP. `Infinity`: never. */
  readonly splitPixels?: number;
}

/** Default `splitPixels`: below about a megapixel the second worker's fixed costs (planning, tables) eat much of the gain. */
export const SPLIT_PIXELS = 1_000_000;

/** One image asked of the pool. */
interface Render {
  readonly job: RenderJob;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (output: RenderOutput) => void;
  readonly reject: (error: Error) => void;
  readonly onStart: (() => void) | undefined;
  readonly cleanup: () => void;
  /** Strips asked for by the caller; undefined lets the pool decide when the image reaches the head of the queue. */
  readonly forcedStrips: number | undefined;
  /** Strips decided (0 until the image reaches the head of the queue). */
  strips: number;
  buffer: SharedArrayBuffer | undefined;
  running: number;
  done: number;
  millis: number;
  started: boolean;
  settled: boolean;
}

/** What one worker does at a time: a whole image, or one strip of it. */
interface Task {
  readonly id: number;
  readonly render: Render;
  readonly strip: readonly [number, number] | undefined;
  /** Identifies the image across its strips (the id of its first task). */
  readonly image: number;
}

interface Slot {
  readonly worker: Worker;
  current: Task | undefined;
}

export function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  const error = new Error('The render was aborted');
  error.name = 'AbortError';
  return error;
}

/** Starts one render worker: the compiled `render-worker.js` from the build, or the `.ts` one through tsx (see `workerEntry`). */
function startWorker(): Worker {
  const entry = workerEntry(import.meta.url, 'render-worker');
  return new Worker(entry.filename, { eval: entry.eval, ...(entry.execArgv ? { execArgv: entry.execArgv } : {}) });
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private readonly splitPixels: number;
  private nextId = 1;
  private closed = false;
  private pumpScheduled = false;

  constructor(readonly size: number, options: WorkerPoolOptions = {}) {
    this.splitPixels = options.splitPixels ?? SPLIT_PIXELS;
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

  /**
   * Renders `job`, whole on the next free worker or split into strips over the free workers.
   * `onStart` fires when a worker picks it up. `strips` forces the number of strips (1: whole;
   * more than the pool has workers is allowed, they queue); by default the pool decides.
   */
  render(job: RenderJob, signal?: AbortSignal, onStart?: () => void, strips?: number): Promise<RenderOutput> {
    if (this.closed) return Promise.reject(new Error('The studio worker pool is closed'));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<RenderOutput>((resolve, reject) => {
      const onAbort = (): void => {
        // Only queued work is dropped; a strip or image already running finishes (it takes well under a second).
        this.dropQueued(render);
        if (render.running === 0 && !render.settled) this.fail(render, abortError(signal));
      };
      const cleanup = (): void => signal?.removeEventListener('abort', onAbort);
      const render: Render = {
        job, signal, resolve, reject, onStart, cleanup, forcedStrips: strips === undefined ? undefined : Math.max(1, Math.floor(strips)),
        strips: 0, buffer: undefined, running: 0, done: 0, millis: 0, started: false, settled: false,
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const id = this.nextId++;
      this.queue.push({ id, render, strip: undefined, image: id });
      // Dispatch after the current turn, so that images asked for together are seen together
      // (each then renders whole on its own worker, instead of the first taking every worker).
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        queueMicrotask(() => this.pump());
      }
    });
  }

  /** How many strips the image at the head of the queue is drawn in, given the free workers. */
  private stripsFor(render: Render, idle: number): number {
    if (render.forcedStrips !== undefined) return render.forcedStrips;
    const { width, height } = render.job;
    // Another image waiting: it takes the next free worker, each renders whole.
    if (width * height < this.splitPixels || this.queue.length > 1) return 1;
    // Workers drawing a strip are free again within a fraction of a render: count them in, so that
    // an image arriving while another is split is split too, instead of running alone beside an idle worker.
    const soon = this.slots.filter((slot) => slot.current?.strip !== undefined).length;
    return idle + soon >= 2 ? idle + soon : 1;
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (this.closed) return;
    for (;;) {
      const idle = this.slots.filter((slot) => !slot.current);
      if (idle.length === 0 || this.queue.length === 0) return;
      const head = this.queue[0]!;
      const render = head.render;
      if (render.strips === 0) {
        const bounds = stripBounds(render.job.width, this.stripsFor(render, idle.length));
        render.strips = bounds.length;
        if (bounds.length > 1) {
          render.buffer = new SharedArrayBuffer(render.job.width * render.job.height * 3);
          this.queue.splice(0, 1, ...bounds.map((strip, i) => ({ id: i === 0 ? head.id : this.nextId++, render, strip, image: head.image })));
        }
      }
      const task = this.queue.shift()!;
      const slot = idle[0]!;
      slot.current = task;
      render.running++;
      slot.worker.ref();
      const strip = task.strip && render.buffer ? { buffer: render.buffer, x0: task.strip[0], x1: task.strip[1], image: task.image } : undefined;
      slot.worker.postMessage({ id: task.id, job: render.job, ...(strip ? { strip } : {}) } satisfies RenderRequest);
    }
  }

  private onMessage(slot: Slot, message: RenderResponse): void {
    const task = slot.current;
    if (!task || task.id !== message.id) return;
    const render = task.render;
    if (message.type === 'started') {
      if (!render.started) {
        render.started = true;
        render.onStart?.();
      }
      return;
    }
    slot.current = undefined;
    slot.worker.unref();
    render.running--;
    if (!render.settled) {
      const { job } = render;
      if (message.type === 'error') this.fail(render, new Error(`studio render failed: ${message.message}`));
      else if (render.signal?.aborted) {
        if (render.running === 0) this.fail(render, abortError(render.signal));
      } else if (!task.strip) {
        this.succeed(render, { data: new Uint8Array(message.buffer!), width: message.width, height: message.height, millis: message.millis, strips: 1 });
      } else {
        render.millis = Math.max(render.millis, message.millis);
        if (++render.done === render.strips) this.succeed(render, { data: new Uint8Array(render.buffer!), width: job.width, height: job.height, millis: render.millis, strips: render.strips });
      }
    }
    this.pump();
  }

  private succeed(render: Render, output: RenderOutput): void {
    render.settled = true;
    render.cleanup();
    render.resolve(output);
  }

  /** Settles `render` with `error` and drops its queued strips (running ones finish and are ignored). */
  private fail(render: Render, error: Error): void {
    render.settled = true;
    render.cleanup();
    this.dropQueued(render);
    render.reject(error);
  }

  private dropQueued(render: Render): void {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.render === render) this.queue.splice(i, 1);
  }

  private onCrash(slot: Slot, error: Error): void {
    const task = slot.current;
    slot.current = undefined;
    if (task) {
      task.render.running--;
      if (!task.render.settled) this.fail(task.render, error);
    }
    const index = this.slots.indexOf(slot);
    void slot.worker.terminate();
    if (!this.closed && index >= 0) this.slots[index] = this.spawn();
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    const closedError = (): Error => new Error('The studio worker pool is closed');
    for (const task of this.queue.splice(0)) if (!task.render.settled) this.fail(task.render, closedError());
    await Promise.all(this.slots.map(async (slot) => {
      const task = slot.current;
      slot.current = undefined;
      if (task && !task.render.settled) this.fail(task.render, closedError());
      await slot.worker.terminate();
    }));
  }
}
