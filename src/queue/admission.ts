/**
 * The `Admission` port: how many images may wait or run at once, across every API process.
 * The memory adapter counts in this process; the Redis adapter counts in one Redis hash with an
 * atomic script, so two API processes can never overshoot the bound together.
 */
export type ReserveOutcome = 'reserved' | 'kept' | 'full';

export interface Admission {
  /**
   * Reserves `images` for a task: `reserved`, or `full` when that would pass the capacity
   * (nothing is reserved then). Reserving a taskUUID that already holds a reservation keeps the
   * first one and answers `kept` (a resubmission never counts twice, and only a caller that got
   * `reserved` may give it back for a task it then refuses).
   *
   * With `force` (a task accepted before, enqueued again after a restart) the images are counted
   * even past the capacity, never `full`: a bound lowered across the restart then holds new tasks
   * back until the backlog has drained below it, instead of counting only what fits.
   */
  reserve(taskUUID: string, images: number, options?: { force?: boolean }): Promise<ReserveOutcome>;
  /** Frees a task's reservation (its task ended, or was refused after reserving). Unknown ids are ignored. */
  release(taskUUID: string): Promise<void>;
  /** Images reserved now. */
  reserved(): Promise<number>;
  /** The taskUUIDs holding reservations made before `before` (ms since epoch), for reconciliation. */
  listOlderThan(before: number): Promise<string[]>;
  close(): Promise<void>;
}

/** The admission backend cannot be reached; callers answer 503. */
export class AdmissionUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AdmissionUnavailableError';
  }
}
