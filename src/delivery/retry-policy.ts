/** How one kind of delivery is retried (kiln-extensions.md: 250 ms doubling to 8 s, jitter, 8 attempts). */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Time one attempt may take (connect, send, answer), in ms. */
  readonly timeoutMs: number;
  /** Delay after the first failure, in ms; doubles after each further failure. */
  readonly baseDelayMs: number;
  /** Longest delay between attempts, in ms. */
  readonly maxDelayMs: number;
}

/**
 * Delay before the attempt after `failures` failed ones: exponential, capped, with "equal
 * jitter" (half fixed, half random) so a receiver that comes back is not hit by every sender at once.
 */
export function backoffDelay(policy: RetryPolicy, failures: number, random: () => number = Math.random): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failures - 1));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}
