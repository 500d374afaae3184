/**
 * Runs at most `concurrency` of the given async jobs at once, in order. Resolves when all have
 * settled; when one throws, no further job starts, `onFirstError` is told at once (to stop the
 * jobs still running), and the first error is thrown once every started job has settled, so the
 * caller never decides anything while a job is still at work.
 */
export async function runLimited<T>(
  items: readonly T[],
  concurrency: number,
  job: (item: T, index: number) => Promise<void>,
  onFirstError?: (error: unknown) => void,
): Promise<void> {
  let next = 0;
  let failed = false;
  let first: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const index = next++;
      try {
        await job(items[index] as T, index);
      } catch (error) {
        if (!failed) {
          failed = true;
          first = error;
          onFirstError?.(error);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  if (failed) throw first;
}
