import type { ApiError } from '../errors/index.ts';

/** What happens to a running task, in the order it happens. */
export type TaskEvent =
  /** One image is finished; `item` is its result item, ready for the wire. */
  | { readonly type: 'result'; readonly taskUUID: string; readonly item: Readonly<Record<string, unknown>> }
  /** One image (or the whole task) failed. */
  | { readonly type: 'error'; readonly taskUUID: string; readonly error: ApiError }
  /** A problem reported after the results (e.g. `uploadFailed`); the results stand. */
  | { readonly type: 'notice'; readonly taskUUID: string; readonly error: ApiError }
  /** Every image has settled. */
  | { readonly type: 'end'; readonly taskUUID: string };

export type TaskListener = (event: TaskEvent) => void;

/** Per-task subscriptions: transports watch the tasks they wait for; nothing is kept for tasks nobody watches. */
export class TaskEvents {
  private readonly listeners = new Map<string, Set<TaskListener>>();

  watch(taskUUID: string, listener: TaskListener): () => void {
    let set = this.listeners.get(taskUUID);
    if (!set) {
      set = new Set();
      this.listeners.set(taskUUID, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(taskUUID);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.listeners.delete(taskUUID);
    };
  }

  emit(event: TaskEvent): void {
    const set = this.listeners.get(event.taskUUID);
    if (!set) return;
    for (const listener of [...set]) listener(event);
  }
}
