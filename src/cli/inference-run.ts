/**
 * One `imageInference` task over a `RunwareSocket` with sync semantics: results arrive one
 * frame per image. The run ends when every image arrived or failed. After an error the task's
 * state is read with `getResponse`, because an error frame alone does not say whether more is
 * coming (a failed image among others, a refused task, or a closed sync window — after which
 * the results are only readable by polling).
 */
import { ConnectionProblem, type RunwareSocket, type WireError } from './runware-socket.ts';

export type ResultItem = Record<string, unknown> & { readonly imageUUID: string };

export interface InferenceOutcome {
  readonly images: readonly ResultItem[];
  readonly errors: readonly WireError[];
}

const POLL_MS = 1_000;

/**
 * Sends `task` (an imageInference task with `taskUUID` and `numberResults`) and resolves when
 * it ended. `onImage` runs for every new image (awaited in order). Rejects with a
 * `ConnectionProblem` when the socket closes first.
 */
export function runInference(
  socket: RunwareSocket,
  task: Record<string, unknown> & { readonly taskUUID: string; readonly numberResults: number },
  onImage: (item: ResultItem) => void | Promise<void>,
  /** Kiln's progress items (`progress: true` on the task): `imageIndex`, `stage`, `progress`. */
  onProgress?: (item: Record<string, unknown>) => void,
): Promise<InferenceOutcome> {
  const key = task.taskUUID.toLowerCase();
  const images: ResultItem[] = [];
  const errors: WireError[] = [];
  const seen = new Set<string>();
  let polling = false;
  let finished = false;
  let chain = Promise.resolve();
  return new Promise<InferenceOutcome>((resolve, reject) => {
    const finish = (): void => {
      if (finished) return;
      finished = true;
      stop();
      clearTimeout(pollTimer);
      chain.then(() => resolve({ images, errors }), reject);
    };
    const addImage = (item: Record<string, unknown>): void => {
      if (typeof item.imageUUID !== 'string' || seen.has(item.imageUUID)) return;
      seen.add(item.imageUUID);
      const image = item as ResultItem;
      images.push(image);
      chain = chain.then(() => onImage(image));
    };
    const complete = (): boolean => images.length + errors.filter((e) => e.code !== 'timeoutProvider').length >= task.numberResults;
    let pollTimer: NodeJS.Timeout | undefined;
    const poll = async (): Promise<void> => {
      if (finished || polling) return;
      polling = true;
      try {
        const answer = await socket.request([{ taskType: 'getResponse', taskUUID: task.taskUUID }], key, 30_000);
        if (finished) return;
        if (answer.errors.some((e) => e.code === 'taskNotFound')) return finish();
        let processing = 0;
        for (const item of answer.items) {
          if (item.status === 'processing') processing++;
          else if (item.taskType === 'imageInference') addImage(item);
        }
        const waitedOut = errors.some((e) => e.code === 'timeoutProvider');
        if (processing === 0 || complete()) return finish();
        // Past the sync window nothing more is pushed: keep reading.
        if (waitedOut) pollTimer = setTimeout(() => void poll(), POLL_MS);
      } catch (error) {
        if (!finished) {
          finished = true;
          stop();
          reject(error);
        }
      } finally {
        polling = false;
      }
    };
    const stop = socket.listen(key, (item, error) => {
      if (finished) return;
      if (item) {
        // getResponse answers are read by `poll`.
        if (item.status === undefined && item.taskType === 'imageInference') addImage(item);
        else if (item.status === 'progress') {
          onProgress?.(item);
          return;
        }
      } else if (error) {
        // Errors of a getResponse answer (`status: "error"`) are read by `poll`.
        if (error.taskType === 'getResponse' || error.status === 'error') return;
        errors.push(error);
        if (complete()) return finish();
        void poll();
        return;
      }
      if (complete()) finish();
    });
    socket.whenClosed().then((reason) => {
      if (finished) return;
      finished = true;
      stop();
      clearTimeout(pollTimer);
      reject(new ConnectionProblem(reason));
    });
    socket.send([task]);
  });
}
