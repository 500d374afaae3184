import { isNotFoundError } from './upstream-errors.ts';
import type { UpstreamObject, UpstreamReply } from './upstream-transport.ts';

/** One `getResponse` answer, sorted (runware-protocol.md §4.4). */
export interface PollView {
  /** Finished images (`status: "success"` with an `imageUUID`), in the upstream's order. */
  readonly successes: readonly UpstreamObject[];
  /** Images still being made. */
  readonly processing: number;
  /** Generations that failed (errors with `status: "error"`, or error items inside `data`). */
  readonly failures: readonly UpstreamObject[];
  /** The upstream does not know the task (never received, or expired). */
  readonly notFound?: UpstreamObject;
  /** An error about the poll itself rather than one generation (e.g. `serviceUnavailable`). */
  readonly fault?: UpstreamObject;
}

export function readPoll(reply: UpstreamReply): PollView {
  const successes: UpstreamObject[] = [];
  const failures: UpstreamObject[] = [];
  let processing = 0;
  for (const item of reply.data) {
    if (item.status === 'success' && typeof item.imageUUID === 'string') successes.push(item);
    else if (item.status === 'processing') processing++;
    else if (item.status === 'error') {
      // The variant the new TS SDK accepts: `{status:"error", error:{code,message}}` inside data.
      const embedded = item.error;
      failures.push(embedded && typeof embedded === 'object' ? (embedded as UpstreamObject) : item);
    }
    // Anything else (an async ack replayed late) says nothing about progress.
  }
  let notFound: UpstreamObject | undefined;
  let fault: UpstreamObject | undefined;
  for (const error of reply.errors) {
    if (isNotFoundError(error)) notFound ??= error;
    else if (error.status === 'error' || error.taskType === 'imageInference') failures.push(error);
    else fault ??= error;
  }
  return {
    successes,
    processing,
    failures,
    ...(notFound ? { notFound } : {}),
    ...(fault ? { fault } : {}),
  };
}

/** True when the upstream task has ended: nothing is processing and every expected image is accounted for, or some failed. */
export function hasEnded(view: PollView, expected: number): boolean {
  if (view.processing > 0) return false;
  const accounted = view.successes.length + view.failures.length;
  return accounted >= Math.max(1, expected) || (view.failures.length > 0 && accounted > 0);
}
