/**
 * The task event bus: how the process that runs a task tells the processes whose clients wait
 * for it. In one process (`kiln serve`) it is a map of listeners; scaled out, a Redis adapter
 * carries the same events between worker and API processes.
 */
import type { ApiError } from '../errors/index.ts';

/** What happens to a running task, in the order it happens. */
export type TaskEvent =
  /** One image is finished; `item` is its result item, ready for the wire (JSON-safe). */
  | { readonly type: 'result'; readonly taskUUID: string; readonly item: Readonly<Record<string, unknown>> }
  /** One image (or the whole task) failed. */
  | { readonly type: 'error'; readonly taskUUID: string; readonly error: ApiError }
  /** A problem reported after the results (e.g. `uploadFailed`); the results stand. */
  | { readonly type: 'notice'; readonly taskUUID: string; readonly error: ApiError }
  /** Every image has settled. */
  | { readonly type: 'end'; readonly taskUUID: string }
  /**
   * Events of the task may have been missed (the bus lost its connection and has it back): a
   * watcher that needs them reads the store. Told to this process's watchers only, never sent.
   */
  | { readonly type: 'resync'; readonly taskUUID: string }
  /** The task was cancelled (the cancel already settled its images): a worker running it stops its engine. */
  | { readonly type: 'cancel'; readonly taskUUID: string }
  /** Where images are (tasks sent with `progress: true`): progress items, ready for the wire. */
  | { readonly type: 'progress'; readonly taskUUID: string; readonly items: readonly Readonly<Record<string, unknown>>[] };

export type TaskListener = (event: TaskEvent) => void;

/** The event bus cannot be reached (Redis down); callers answer 503. */
export class EventBusUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EventBusUnavailableError';
  }
}

/**
 * Per-task subscriptions across processes. Events of one task reach a listener in the order
 * they were emitted by one process. Nothing is kept for tasks nobody watches: a late watcher
 * reads the store (getResponse) for what it missed.
 */
export interface TaskEventBus {
  /**
   * Subscribes to a task (taskUUID compared case-insensitively). Resolves once the subscription
   * is confirmed, so every event emitted after that resolves reaches `listener`; resolves to the
   * unsubscribe function. Rejects with `EventBusUnavailableError` when the bus cannot be reached.
   */
  watch(taskUUID: string, listener: TaskListener): Promise<() => void>;
  /** Publishes an event to every watcher of its task, in every process. Never throws: a lost event is logged (the store has the truth). */
  emit(event: TaskEvent): Promise<void>;
  /** Resolves when the bus answers (Redis: a PING within the call budget); rejects otherwise. For readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The in-process bus (`kiln serve`): listeners in a map, delivered synchronously. */
export class MemoryTaskEvents implements TaskEventBus {
  private readonly listeners = new Map<string, Set<TaskListener>>();

  async watch(taskUUID: string, listener: TaskListener): Promise<() => void> {
    const key = taskUUID.toLowerCase();
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(key);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.listeners.delete(key);
    };
  }

  async emit(event: TaskEvent): Promise<void> {
    const set = this.listeners.get(event.taskUUID.toLowerCase());
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(event);
      } catch {
        // A faulty listener must not stop the others, nor the task that emits.
      }
    }
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
