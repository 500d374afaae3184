import { FairOrder, type TaggedJob } from './fair-order.ts';
import { fairWeight, QueueUnavailableError, type JobHandler, type JobTurn, type JobYield, type QueueCounts, type QueueJob, type TaskQueue } from './task-queue.ts';

export interface MemoryQueueOptions {
  /** Runs of one job before it is given up (a rejected run counts as one). Default 5. */
  readonly maxAttempts?: number;
  /** Wait before the first rerun of a rejected job, doubled per attempt, at most 5 s. Default 250 ms. */
  readonly retryDelayMs?: number;
  /**
   * Called once when a job is given up after `maxAttempts` rejected runs (the place to log it);
   * the job is then dropped. Never called for cancelled jobs or runs aborted by `close`.
   */
  readonly onGiveUp?: (job: QueueJob, error: unknown) => void;
}

interface Running {
  readonly controller: AbortController;
  readonly done: Promise<void>;
  cancelled: boolean;
}

const MAX_RETRY_DELAY_MS = 5_000;

/**
 * In-process queue, in weighted fair order across job groups (FIFO within a group; see
 * `QueueJob`). It holds only job ids; durability comes from the task store, whose
 * unfinished tasks are enqueued again at start-up. So on `close` waiting jobs are simply
 * dropped, and a run aborted by shutdown is not retried here.
 *
 * A rejected run is retried after a short backoff (the job counts as waiting meanwhile) until
 * `maxAttempts`; a cancelled job is never run again.
 */
export class MemoryQueue implements TaskQueue {
  private readonly waiting: TaggedJob[] = [];
  private readonly order = new FairOrder();
  private readonly retrying = new Map<string, { job: TaggedJob; timer: NodeJS.Timeout }>();
  private readonly failedAttempts = new Map<string, number>();
  private readonly running = new Map<string, Running>();
  private readonly maxAttempts: number;
  private readonly retryDelayMs: number;
  private handler: JobHandler | undefined;
  private concurrency = 1;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: MemoryQueueOptions = {}) {
    this.maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 5));
    this.retryDelayMs = Math.max(0, options.retryDelayMs ?? 250);
  }

  async enqueue(job: QueueJob, after?: Promise<unknown>): Promise<void> {
    if (after) await after;
    if (this.closing) throw new QueueUnavailableError('the queue is closed');
    if (this.has(job.id)) return;
    FairOrder.insert(this.waiting, this.order.tag(job));
    this.pump();
  }

  process(handler: JobHandler, options: { concurrency: number }): void {
    if (this.handler) throw new Error('process() was already called');
    this.handler = handler;
    this.concurrency = Math.max(1, Math.floor(options.concurrency));
    this.pump();
  }

  async counts(): Promise<QueueCounts> {
    if (this.closing) throw new QueueUnavailableError('the queue is closed');
    return { waiting: this.waiting.length + this.retrying.size, running: this.running.size };
  }

  /** Resolves once a running job's handler has settled. */
  async cancel(id: string): Promise<boolean> {
    const at = this.waiting.findIndex((tagged) => tagged.job.id === id);
    if (at >= 0) {
      this.waiting.splice(at, 1);
      this.failedAttempts.delete(id);
      return true;
    }
    const retry = this.retrying.get(id);
    if (retry) {
      clearTimeout(retry.timer);
      this.retrying.delete(id);
      this.failedAttempts.delete(id);
      return true;
    }
    const active = this.running.get(id);
    if (!active) return false;
    active.cancelled = true;
    active.controller.abort(new DOMException('the job was cancelled', 'AbortError'));
    await active.done;
    return true;
  }

  close(options: { drainMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(options.drainMs ?? 0);
    return this.closing;
  }

  private async shutdown(drainMs: number): Promise<void> {
    this.waiting.length = 0;
    for (const retry of this.retrying.values()) clearTimeout(retry.timer);
    this.retrying.clear();
    this.failedAttempts.clear();
    const all = Promise.all([...this.running.values()].map((run) => run.done));
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      all.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), drainMs);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      for (const run of this.running.values()) run.controller.abort(new DOMException('the queue is shutting down', 'AbortError'));
      await all;
    }
  }

  private has(id: string): boolean {
    return this.running.has(id) || this.retrying.has(id) || this.waiting.some((tagged) => tagged.job.id === id);
  }

  private pump(): void {
    const handler = this.handler;
    if (!handler || this.closing) return;
    while (this.running.size < this.concurrency) {
      const tagged = this.waiting.shift();
      if (!tagged) return;
      this.order.started(tagged);
      this.start(handler, tagged);
    }
  }

  private start(handler: JobHandler, tagged: TaggedJob): void {
    const job = tagged.job;
    const controller = new AbortController();
    const weight = fairWeight(job);
    // Where the job's remaining work stands in fair order once `done` of its units are done.
    const resumeTag = (done: number): number => tagged.tag + Math.max(0, done) / weight;
    const turn: JobTurn = {
      shouldYield: (done) => {
        const next = this.waiting[0];
        return Promise.resolve(next !== undefined && next.tag < resumeTag(done));
      },
    };
    const run: Running = {
      controller,
      cancelled: false,
      done: Promise.resolve()
        .then(() => handler({ id: job.id }, controller.signal, turn))
        .then(
          (outcome: void | JobYield) => {
            this.failedAttempts.delete(job.id);
            // Handed back between units: the rest waits at its own tag, ahead of the group's later jobs.
            if (outcome && !run.cancelled && !this.closing) FairOrder.insert(this.waiting, { job, tag: resumeTag(outcome.yielded), seq: tagged.seq });
          },
          (error: unknown) => this.afterRejection(tagged, run, error),
        )
        .finally(() => {
          this.running.delete(job.id);
          this.pump();
        }),
    };
    this.running.set(job.id, run);
  }

  private afterRejection(tagged: TaggedJob, run: Running, error: unknown): void {
    const job = tagged.job;
    if (run.cancelled || this.closing) {
      this.failedAttempts.delete(job.id);
      return;
    }
    const failed = (this.failedAttempts.get(job.id) ?? 0) + 1;
    if (failed >= this.maxAttempts) {
      this.failedAttempts.delete(job.id);
      try {
        this.options.onGiveUp?.(job, error);
      } catch {
        // A failing callback must not stop the queue.
      }
      return;
    }
    this.failedAttempts.set(job.id, failed);
    const delay = Math.min(this.retryDelayMs * 2 ** (failed - 1), MAX_RETRY_DELAY_MS);
    const timer = setTimeout(() => {
      this.retrying.delete(job.id);
      // A rerun keeps its place in the fair order.
      FairOrder.insert(this.waiting, tagged);
      this.pump();
    }, delay);
    timer.unref();
    this.retrying.set(job.id, { job: tagged, timer });
  }
}
