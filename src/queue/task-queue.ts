/**
 * The `TaskQueue` port: a generic job queue that knows nothing of images. The in-process
 * adapter is the default; a BullMQ adapter on Redis implements the same port when scaled out.
 */

/** One unit of work; `id` is unique (a task's UUID). */
export interface QueueJob {
  readonly id: string;
}

/** Runs one job. Reject to mark it failed; `signal` aborts on cancel or shutdown. */
export type JobHandler = (job: QueueJob, signal: AbortSignal) => Promise<void>;

export class QueueFullError extends Error {
  constructor(readonly capacity: number) {
    super(`queue is full (${capacity} jobs)`);
    this.name = 'QueueFullError';
  }
}

export interface TaskQueue {
  /**
   * Adds a job. Throws `QueueFullError` when `capacity` jobs are already waiting or running,
   * unless `force` is set (jobs recovered after a restart are never refused).
   */
  enqueue(job: QueueJob, options?: { force?: boolean }): Promise<void>;
  /** Starts running jobs with at most `concurrency` at once. Call once. */
  process(handler: JobHandler, options: { concurrency: number }): void;
  /** Jobs waiting plus running. */
  size(): number;
  /** Removes a waiting job or aborts a running one; false when the id is unknown. */
  cancel(id: string): Promise<boolean>;
  /**
   * Stops taking jobs, waits up to `drainMs` (default 0) for running jobs, then aborts the
   * rest. Waiting jobs stay where they are (for the in-process queue: in the task store).
   */
  close(options?: { drainMs?: number }): Promise<void>;
}
