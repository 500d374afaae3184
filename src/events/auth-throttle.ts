/**
 * Throttling of failed authentications per client address. The port is tiny on purpose: API
 * processes ask whether an address is blocked before they check a key, and record each failure.
 * In one process (`kiln serve`) a memory adapter counts; in a cluster the Redis adapter counts
 * for all API processes together (one INCR + PEXPIRE per failure), so a brute force spread over
 * several processes behind a load balancer meets the same limit.
 */

/** Failed authentications per client address, counted over a fixed window. */
export interface AuthThrottle {
  /**
   * Milliseconds until the address may try again, or 0 when it is not blocked. An address is
   * blocked once it failed `limit` times within the window, until the window ends.
   * Fails open (answers 0) when the shared counter cannot be reached: the key check still runs.
   */
  blockedFor(address: string): Promise<number>;
  /** Records one failed authentication of the address. Never throws. */
  fail(address: string): Promise<void>;
  close(): Promise<void>;
}

export interface AuthThrottleOptions {
  /** Failures allowed per window before the address is refused. Default 20. */
  readonly limit?: number;
  /** Length of the window, in ms. Default 60 000. */
  readonly windowMs?: number;
}

export const AUTH_THROTTLE_DEFAULTS = { limit: 20, windowMs: 60_000 } as const;

/** Bound on addresses tracked in memory, so a spray of addresses cannot grow the map without limit. */
const MAX_TRACKED = 100_000;

/** Counts in this process only: right for `kiln serve`, not for several API processes. */
export class MemoryAuthThrottle implements AuthThrottle {
  private readonly windows = new Map<string, { count: number; until: number }>();
  private readonly limit: number;
  private readonly windowMs: number;

  constructor(options: AuthThrottleOptions = {}, private readonly now: () => number = () => performance.now()) {
    this.limit = options.limit ?? AUTH_THROTTLE_DEFAULTS.limit;
    this.windowMs = options.windowMs ?? AUTH_THROTTLE_DEFAULTS.windowMs;
  }

  async blockedFor(address: string): Promise<number> {
    const entry = this.windows.get(address);
    const now = this.now();
    if (!entry) return 0;
    if (entry.until <= now) {
      this.windows.delete(address);
      return 0;
    }
    return entry.count >= this.limit ? Math.ceil(entry.until - now) : 0;
  }

  async fail(address: string): Promise<void> {
    const now = this.now();
    let entry = this.windows.get(address);
    if (!entry || entry.until <= now) {
      if (this.windows.size >= MAX_TRACKED) this.prune(now);
      entry = { count: 0, until: now + this.windowMs };
      this.windows.set(address, entry);
    }
    entry.count++;
  }

  private prune(now: number): void {
    for (const [address, entry] of this.windows) if (entry.until <= now) this.windows.delete(address);
    // Still full: forget the oldest half rather than grow.
    if (this.windows.size >= MAX_TRACKED) {
      let drop = Math.floor(this.windows.size / 2);
      for (const address of this.windows.keys()) {
        if (drop-- <= 0) break;
        this.windows.delete(address);
      }
    }
  }

  async close(): Promise<void> {
    this.windows.clear();
  }
}
