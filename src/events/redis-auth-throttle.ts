/**
 * The `AuthThrottle` over Redis, shared by every API process of a cluster: one key per client
 * address, `<prefix>:authfail:<address>`, incremented per failure; the first failure of a window
 * sets its expiry, so the key vanishes when the window ends.
 *
 * What a process last read of an address (its count and expiry) is trusted for `readTrustMs`
 * (default 1 s), so a busy address costs one Redis read per second per process instead of one
 * per request. Each failure counted here refreshes it at once from the INCR's answer; only a
 * block reached through another process takes up to `readTrustMs` to reach this one.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import { AUTH_THROTTLE_DEFAULTS, type AuthThrottle, type AuthThrottleOptions } from './auth-throttle.ts';
import { closeRedisClient, createRedisClient, REDIS_CALL_BUDGET_MS, withDeadline } from './redis-clients.ts';

export interface RedisAuthThrottleOptions extends AuthThrottleOptions {
  readonly redisUrl: string;
  /** Namespace of the keys. Default `kiln`. */
  readonly prefix?: string;
  readonly logger?: Logger;
  /** How long a read of an address's count is used before Redis is asked again. Default 1 000 ms; 0 reads every time. */
  readonly readTrustMs?: number;
  /** Milliseconds on a monotonic clock (tests move it by hand). */
  readonly now?: () => number;
}

/** INCR, and PEXPIRE when the key is new (or lost its TTL), atomically; answers the count and the milliseconds left. */
const FAIL_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`;

/** Addresses whose last read is remembered; past it the stale ones go, then the oldest. */
const MAX_REMEMBERED = 10_000;

/**
 * An address as last read: its failures in the current window, when the window ends, when the
 * command that read it was sent (all on `now`'s clock), and that command's place in the order
 * this process sent its commands in.
 */
interface Known {
  readonly count: number;
  readonly until: number;
  readonly readAt: number;
  readonly sent: number;
}

export class RedisAuthThrottle implements AuthThrottle {
  private readonly client: Redis;
  private readonly prefix: string;
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly logger: Logger | undefined;
  private readonly readTrustMs: number;
  private readonly now: () => number;
  /** In order of reading (a new read moves an address to the end). */
  private readonly known = new Map<string, Known>();
  /** Numbers the commands as they are sent: one connection answers them in that order, but their answers may be handled out of it. */
  private sent = 0;

  constructor(options: RedisAuthThrottleOptions) {
    this.prefix = options.prefix ?? 'kiln';
    this.limit = options.limit ?? AUTH_THROTTLE_DEFAULTS.limit;
    this.windowMs = options.windowMs ?? AUTH_THROTTLE_DEFAULTS.windowMs;
    this.logger = options.logger;
    this.readTrustMs = Math.max(0, options.readTrustMs ?? 1_000);
    this.now = options.now ?? (() => performance.now());
    this.client = createRedisClient({ redisUrl: options.redisUrl, connectionName: `${this.prefix}-auththrottle`, logger: this.logger, lazy: true });
  }

  private keyOf(address: string): string {
    return `${this.prefix}:authfail:${address}`;
  }

  async blockedFor(address: string): Promise<number> {
    let entry = this.known.get(address);
    if (entry === undefined || this.now() - entry.readAt >= this.readTrustMs) {
      try {
        const key = this.keyOf(address);
        const asked = { at: this.now(), sent: ++this.sent };
        const [count, ttl] = await withDeadline(Promise.all([this.client.get(key), this.client.pttl(key)]), REDIS_CALL_BUDGET_MS, 'auth throttle read');
        entry = this.remember(address, Number(count ?? 0), ttl, asked);
      } catch (error) {
        this.logger?.warn({ err: error }, 'auth throttle unavailable; not throttling');
        return 0;
      }
    }
    const left = entry.until - this.now();
    return entry.count >= this.limit && left > 0 ? Math.ceil(left) : 0;
  }

  async fail(address: string): Promise<void> {
    try {
      const asked = { at: this.now(), sent: ++this.sent };
      const [count, ttl] = (await withDeadline(this.client.eval(FAIL_SCRIPT, 1, this.keyOf(address), String(this.windowMs)), REDIS_CALL_BUDGET_MS, 'auth throttle write')) as [number, number];
      this.remember(address, Number(count), Number(ttl), asked);
    } catch (error) {
      this.logger?.warn({ err: error }, 'auth throttle unavailable; failure not counted');
    }
  }

  /**
   * Keeps what Redis answered for `address` (`ttl`: PTTL's milliseconds, negative when there is
   * no window) to a command sent as `asked` says, unless the entry holds the answer to a command
   * sent later (a read that went out before a failure's INCR must not undo its count).
   */
  private remember(address: string, count: number, ttl: number, asked: { at: number; sent: number }): Known {
    const kept = this.known.get(address);
    if (kept !== undefined && kept.sent > asked.sent) return kept;
    // The window's end counts from the answer (never early); the trust from the question (never long).
    const entry: Known = { count: ttl > 0 ? count : 0, until: this.now() + Math.max(0, ttl), readAt: asked.at, sent: asked.sent };
    this.known.delete(address);
    if (this.known.size >= MAX_REMEMBERED) {
      const now = this.now();
      for (const [old, known] of this.known) {
        if (this.known.size < MAX_REMEMBERED / 2 || now - known.readAt < this.readTrustMs) break;
        this.known.delete(old);
      }
      // Still full of fresh reads (a spray of addresses): forget the oldest, which only costs reads.
      for (const old of this.known.keys()) {
        if (this.known.size < MAX_REMEMBERED) break;
        this.known.delete(old);
      }
    }
    this.known.set(address, entry);
    return entry;
  }

  async close(): Promise<void> {
    await closeRedisClient(this.client);
  }
}
