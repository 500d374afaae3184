import type { TaskEventBus } from '../events/task-events.ts';

/** The stages an image goes through, in order (docs/protocol.md, progress items). */
export type ProgressStage = 'queued' | 'rendering' | 'encoding' | 'storing' | 'uploading';

/**
 * How far along an image is when it enters each stage. The engines report no progress inside a
 * render, so `progress` moves by stage: a coarse figure rather than an invented smooth one.
 * `uploading` comes after the image's result (it is made; its PUT to uploadEndpoint goes on).
 */
const STAGE_PROGRESS: Record<ProgressStage, number> = { queued: 0, rendering: 0.05, encoding: 0.75, storing: 0.9, uploading: 1 };
const ORDER: readonly ProgressStage[] = ['queued', 'rendering', 'encoding', 'storing', 'uploading'];

/** One progress item as clients receive it. */
export function progressItem(taskUUID: string, imageIndex: number, stage: ProgressStage): Record<string, unknown> {
  return { taskType: 'imageInference', taskUUID, status: 'progress', imageIndex, stage, progress: STAGE_PROGRESS[stage] };
}

/** Least time between two progress events of one task: at most four a second. */
export const PROGRESS_INTERVAL_MS = 250;

/**
 * Progress of one task run, sent as events for clients that asked (`progress: true`), at most
 * one event per PROGRESS_INTERVAL_MS: an event carries the latest stage of every image that
 * moved since the last one (a stage skipped in between is not sent). Stages only move forward.
 */
export class ProgressReporter {
  private readonly latest = new Map<number, ProgressStage>();
  private readonly sent = new Map<number, ProgressStage>();
  private lastEmit = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly events: TaskEventBus,
    private readonly taskUUID: string,
    private readonly enabled: boolean,
  ) {}

  private readonly finished = new Set<number>();

  /**
   * Image `imageIndex` has its result (about to be sent): a stage still waiting for the next
   * frame is dropped, so no progress item of an image follows its result, except `uploading`.
   */
  resultFor(imageIndex: number): void {
    this.finished.add(imageIndex);
    const stage = this.latest.get(imageIndex);
    if (stage !== undefined) this.sent.set(imageIndex, stage);
  }

  /** Image `imageIndex` entered `stage`. */
  report(imageIndex: number, stage: ProgressStage): void {
    if (!this.enabled || this.closed) return;
    if (this.finished.has(imageIndex) && stage !== 'uploading') return;
    const current = this.latest.get(imageIndex);
    if (current !== undefined && ORDER.indexOf(current) >= ORDER.indexOf(stage)) return;
    this.latest.set(imageIndex, stage);
    if (this.timer) return;
    const wait = this.lastEmit + PROGRESS_INTERVAL_MS - Date.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Sends what is pending at once and stops (before the task's end is announced). */
  close(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.flush();
    this.closed = true;
  }

  private flush(): void {
    this.timer = undefined;
    if (this.closed) return;
    const items: Record<string, unknown>[] = [];
    for (const [index, stage] of this.latest) {
      if (this.sent.get(index) === stage) continue;
      this.sent.set(index, stage);
      items.push(progressItem(this.taskUUID, index, stage));
    }
    if (items.length === 0) return;
    this.lastEmit = Date.now();
    void this.events.emit({ type: 'progress', taskUUID: this.taskUUID, items });
  }
}
