/**
 * The `TaskQueue` port: a generic job queue that knows nothing of images. The in-process
 * adapter (`MemoryQueue`) is the default; `BullmqQueue` implements the same port on Redis when
 * Kiln is scaled out. Admission (how much work may wait) is not the queue's business: see
 * `Admission`.
 */

/**
 * One unit of work; `id` is unique (a task's UUID, lower case). Waiting jobs are started in
 * weighted fair order across groups (start-time fair queueing, docs/tenancy.md): each group's
 * jobs get virtual start tags `max(V, last finish of the group)`, finishing `cost / weight`
 * later, and the job with the lowest tag starts first (FIFO within a group, and among equal
 * tags). `V` is the tag of the last job started. A group with little waiting work therefore
 * starts next, however much another group has queued.
 */
export interface QueueJob {
  readonly id: string;
  /** Fair-sharing group (Kiln: the API key id). Default: one shared group. */
  readonly group?: string;
  /** Work the job stands for (Kiln: images). Default 1. */
  readonly cost?: number;
  /** The group's share under contention, relative to others. Default 1. */
  readonly weight?: number;
}

/**
 * Runs one job. Resolve: the job is complete. Reject: the attempt failed; the queue runs the
 * job again after a short backoff, up to the adapter's `maxAttempts` (memory: 5, BullMQ: 1000),
 * then gives it up (`onGiveUp`, logged). `signal` aborts on cancel, on shutdown (after the
 * drain period) and, for BullMQ, when the job's lock was lost to another worker; a handler that
 * stops because of it must reject (an aborted run is never a completed job). A run aborted by
 * shutdown is a failed attempt (BullMQ: back to waiting; memory: dropped with the queue, the task
 * store re-enqueues unfinished tasks at start); a cancelled job is never run again.
 */
export type JobHandler = (job: QueueJob, signal: AbortSignal, turn: JobTurn) => Promise<void | JobYield>;

/**
 * A running job's turn, for jobs that stand for several units of work (Kiln: a task of several
 * images). Fairness counts units, so such a job hands its slot back between units when the
 * queue has a job that fair order puts before the job's remaining work: the handler asks
 * `shouldYield(done)` before starting another unit and, when told to, finishes what it started
 * and resolves with `{ yielded: done }`. The queue then puts the job back with the virtual start
 * tag its remaining units would have had as a job of their own (the job's start tag plus
 * `done / weight`), ahead of the group's later jobs, so the group stays FIFO. A yield is not an
 * attempt: it neither counts toward `maxAttempts` nor backs off.
 */
export interface JobTurn {
  /**
   * True when a waiting job comes before this job's remaining work in fair order, `done` units
   * having been done in this run. Never rejects (a backend that cannot tell answers false).
   */
  shouldYield(done: number): Promise<boolean>;
}

/** What a handler resolves with when it handed its slot back (see `JobTurn`). */
export interface JobYield {
  /** Units of the job's cost done in this run. */
  readonly yielded: number;
}

/** A job's fair-sharing weight: its `weight` when positive, else 1. */
export function fairWeight(job: { readonly weight?: unknown }): number {
  return typeof job.weight === 'number' && Number.isFinite(job.weight) && job.weight > 0 ? job.weight : 1;
}

export interface QueueCounts {
  /** Jobs waiting to start (delayed retries included). */
  readonly waiting: number;
  /** Jobs running on some worker. */
  readonly running: number;
}

/** The queue's backend cannot be reached (e.g. Redis is down); callers answer 503. */
export class QueueUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QueueUnavailableError';
  }
}

export interface TaskQueue {
  /**
   * Adds a job. Idempotent by id: adding a job that is already waiting or running does nothing.
   * Rejects with `QueueUnavailableError` when the backend does not answer in time.
   *
   * With `after`, the job is added only once `after` has resolved; work of the queue's own that
   * does not need it may go first (BullMQ: the fair tag's round trip goes out beside the task's
   * insert). When `after` rejects, nothing is added and `enqueue` rejects with its reason.
   */
  enqueue(job: QueueJob, after?: Promise<unknown>): Promise<void>;
  /** Starts running jobs in this process, at most `concurrency` at once. Call once, or never (API processes). */
  process(handler: JobHandler, options: { concurrency: number }): void;
  /** Waiting and running jobs across every process that shares the queue. */
  counts(): Promise<QueueCounts>;
  /**
   * Removes a waiting job (one backing off between attempts included), or aborts it where it
   * runs in this process and resolves once its handler has settled; either way the job does not
   * run again. False when the id is neither waiting nor running here (a job running in another
   * process is not touched).
   */
  cancel(id: string): Promise<boolean>;
  /**
   * Stops taking jobs, waits up to `drainMs` (default 0) for this process's running jobs, then
   * aborts the rest, whose attempts fail and go back to the queue. Waiting jobs stay queued
   * (memory: in the task store, re-enqueued at the next start). Closes connections. Once close
   * has begun, `enqueue` and `counts` reject with `QueueUnavailableError` (BullMQ: so does
   * `cancel` of a job not running here). Idempotent.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}
