/**
 * How one kind of delivery is retried. By default from a schedule that spans well over half an
 * hour (5 s, 30 s, 2 min, 10 min, 30 min, then hourly), so a receiver that is down for 15 minutes
 * still gets every delivery; or, when `baseDelayMs` is set, doubling from it up to `maxDelayMs`.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Time one attempt may take (connect, send, answer), in ms. */
  readonly timeoutMs: number;
  /** Delay before retry k is `scheduleMs[k-1]`; the last one repeats. */
  readonly scheduleMs: readonly number[];
  /** When set, the delay doubles from this after each failure instead, up to `maxDelayMs`. */
  readonly baseDelayMs: number | undefined;
  /** Longest delay between attempts, in ms (doubling mode). */
  readonly maxDelayMs: number;
}

/**
 * Delay before the attempt after `failures` failed ones. From the schedule, plus up to 10 %
 * jitter; in doubling mode exponential and capped, with "equal jitter" (half fixed, half
 * random). Jitter keeps a receiver that comes back from being hit by every sender at once.
 */
export function backoffDelay(policy: RetryPolicy, failures: number, random: () => number = Math.random): number {
  const k = Math.max(1, failures);
  if (policy.baseDelayMs === undefined) {
    const planned = policy.scheduleMs[Math.min(k, policy.scheduleMs.length) - 1] ?? 0;
    return Math.round(planned * (1 + random() * 0.1));
  }
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (k - 1));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

/** How long a delivery keeps being retried before it fails for good: the sum of its planned delays (no jitter). */
export function retrySpanMs(policy: RetryPolicy): number {
  let total = 0;
  for (let failures = 1; failures < policy.maxAttempts; failures++) total += backoffDelay(policy, failures, () => 0);
  return total;
}
