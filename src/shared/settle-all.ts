/**
 * Waits until every promise has settled (none is left running or unobserved), then answers their
 * values, or throws the first rejection in argument order: for work that goes out side by side
 * but whose failures must be handled one at a time, in a known order.
 */
export async function settleAll<const T extends readonly unknown[]>(promises: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const outcomes = await Promise.allSettled(promises);
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
  return outcomes.map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}
