/**
 * The `RateLimiter` port: a token bucket per name (an API key id), `rate` tokens per second with
 * a burst of `burst`. The memory adapter counts in this process (`kiln serve`); the Redis
 * adapter keeps each bucket in Redis and takes tokens with one Lua script on Redis's own clock,
 * so every API process of a cluster draws from the same bucket.
 */
export interface RateLimiter {
  /**
   * Takes one token from the bucket `name`: 0 when it had one, else the milliseconds until it
   * will (nothing is taken then). Rejects with `RateLimiterUnavailableError` when the backend
   * does not answer in time.
   */
  take(name: string, rate: number, burst: number): Promise<number>;
  close(): Promise<void>;
}

/** The rate limiter's backend cannot be reached; callers answer 503. */
export class RateLimiterUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RateLimiterUnavailableError';
  }
}

/** Bound on buckets kept in memory; full buckets are forgotten first. */
const MAX_BUCKETS = 100_000;

/** Token buckets in this process. */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  async take(name: string, rate: number, burst: number): Promise<number> {
    const now = this.now();
    const bucket = this.buckets.get(name) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * rate) / 1000);
    bucket.at = now;
    if (this.buckets.size >= MAX_BUCKETS && !this.buckets.has(name)) this.buckets.clear();
    this.buckets.set(name, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 1000) / rate);
  }

  async close(): Promise<void> {}
}
