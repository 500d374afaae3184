import type { Metrics, Stage, TaskOutcome } from './metrics.ts';

/** The logger a task run writes to (pino's `info` shape). */
interface InfoLogger {
  info(fields: Record<string, unknown>, message: string): void;
}

export interface TaskTimerStart {
  readonly apiKeyId: string;
  readonly model: string;
  readonly engine: string;
  /** When the task was accepted (ms since epoch, the store's clock). */
  readonly acceptedAt: number;
  /** When this run started (same clock). */
  readonly startedAt: number;
  /** Images the task asked for. */
  readonly images: number;
  /** This run resumes a task that an earlier run started (after a yield or a crash): no queue wait nor first result is observed. */
  readonly resumed?: boolean;
}

/**
 * Times one run of a task: observes each stage in the histograms (labelled by model and
 * engine) and sums them, so that the run ends with one log line that says where the time
 * went. Stages that run per image or per engine call are summed over the images (with
 * several in flight at once, a sum can exceed the wall time).
 */
export class TaskTimer {
  private readonly totals = new Map<Stage, number>();
  private firstResultMs: number | undefined;
  private succeeded = 0;
  private cost = 0;
  private readonly errors = new Map<string, number>();

  constructor(
    private readonly metrics: Metrics | undefined,
    private readonly start: TaskTimerStart,
  ) {
    if (!start.resumed) this.stage('queue_wait', start.startedAt - start.acceptedAt);
  }

  /** Records `ms` spent in `stage`. */
  stage(stage: Stage, ms: number): void {
    const value = Math.max(0, ms);
    this.totals.set(stage, (this.totals.get(stage) ?? 0) + value);
    this.metrics?.stageSeconds.observe({ stage, model: this.start.model, engine: this.start.engine }, value / 1000);
  }

  /** Times a call as `stage` (its time counts whether it resolves or rejects). */
  async time<T>(stage: Stage, call: Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await call;
    } finally {
      this.stage(stage, performance.now() - started);
    }
  }

  /** An image was stored and announced; `now` on the store's clock. */
  imageDone(cost: number, now: number): void {
    this.succeeded++;
    this.cost += cost;
    if (this.firstResultMs !== undefined || this.start.resumed) return;
    this.firstResultMs = Math.max(0, now - this.start.acceptedAt);
    this.metrics?.firstResultSeconds.observe({ model: this.start.model, engine: this.start.engine }, this.firstResultMs / 1000);
  }

  /** An image (or the whole task) failed with `code`. */
  imageFailed(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  /**
   * The task ended (`endedAt` on the store's clock): observes its end-to-end time and writes
   * the one line per task an operator looks for (`msg: "task finished"`).
   */
  finish(log: InfoLogger, endedAt: number, run: { images: number; failed: number; allFailed: boolean }): TaskOutcome {
    const outcome: TaskOutcome = run.allFailed ? 'failed' : run.failed > 0 ? 'partial' : 'success';
    const totalMs = Math.max(0, endedAt - this.start.acceptedAt);
    this.metrics?.taskSeconds.observe({ model: this.start.model, engine: this.start.engine, outcome }, totalMs / 1000);
    const stagesMs = Object.fromEntries([...this.totals].map(([stage, ms]) => [stage, Math.round(ms)]));
    log.info(
      {
        // taskUUID comes from the run's child logger.
        apiKeyId: this.start.apiKeyId,
        model: this.start.model,
        engine: this.start.engine,
        outcome,
        // Images of the task, those this run made, and those that failed in it.
        imagesRequested: this.start.images,
        images: run.images,
        succeeded: this.succeeded,
        failed: run.failed,
        ...(this.errors.size > 0 ? { errors: Object.fromEntries(this.errors) } : {}),
        cost: Math.round(this.cost * 1e6) / 1e6,
        // `ms` is this run (claim to end); `totalMs` is acceptance to end.
        ms: Math.max(0, endedAt - this.start.startedAt),
        totalMs,
        ...(this.firstResultMs === undefined ? {} : { firstResultMs: this.firstResultMs }),
        stagesMs,
      },
      'task finished',
    );
    return outcome;
  }
}
