import { QueueFullError, type JobHandler, type QueueJob, type TaskQueue } from './task-queue.ts';

/**
 * In-process FIFO queue. It holds only job ids; durability comes from the task store, whose
 * unfinished tasks are enqueued again at start-up.
 */
export class MemoryQueue implements TaskQueue {
  private readonly waiting: QueueJob[] = [];
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private handler: JobHandler | undefined;
  private concurrency = 1;
  private closed = false;

  constructor(private readonly capacity: number) {}

  async enqueue(job: QueueJob, options: { force?: boolean } = {}): Promise<void> {
    if (this.closed) throw new Error('queue is closed');
    if (!options.force && this.size() >= this.capacity) throw new QueueFullError(this.capacity);
    if (this.running.has(job.id) || this.waiting.some((j) => j.id === job.id)) return;
    this.waiting.push(job);
    this.pump();
  }

  process(handler: JobHandler, options: { concurrency: number }): void {
    if (this.handler) throw new Error('process() was already called');
    this.handler = handler;
    this.concurrency = Math.max(1, options.concurrency);
    this.pump();
  }

  size(): number {
    return this.waiting.length + this.running.size;
  }

  async cancel(id: string): Promise<boolean> {
    const at = this.waiting.findIndex((j) => j.id === id);
    if (at >= 0) {
      this.waiting.splice(at, 1);
      return true;
    }
    const active = this.running.get(id);
    if (!active) return false;
    active.controller.abort(new DOMException('cancelled', 'AbortError'));
    await active.done;
    return true;
  }

  async close(options: { drainMs?: number } = {}): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    const all = Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      all.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), options.drainMs ?? 0);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      for (const r of this.running.values()) r.controller.abort(new DOMException('shutdown', 'AbortError'));
      await all;
    }
  }

  private pump(): void {
    const handler = this.handler;
    if (!handler || this.closed) return;
    while (this.running.size < this.concurrency && this.waiting.length > 0) {
      const job = this.waiting.shift() as QueueJob;
      const controller = new AbortController();
      const done = handler(job, controller.signal)
        .catch(() => {
          // The handler records its own failures; the queue only keeps going.
        })
        .finally(() => {
          this.running.delete(job.id);
          this.pump();
        });
      this.running.set(job.id, { controller, done });
    }
  }
}
