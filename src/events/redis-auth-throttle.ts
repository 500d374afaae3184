/**
 * The `AuthThrottle` over Redis, shared by every API process of a cluster: one key per client
 * address, `<prefix>:authfail:<address>`, incremented per failure; the first failure of a window
 * sets its expiry, so the key vanishes when the window ends.
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
}

/** INCR, and PEXPIRE when the key is new (or lost its TTL), atomically. */
const FAIL_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

export class RedisAuthThrottle implements AuthThrottle {
  private readonly client: Redis;
  private readonly prefix: string;
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly logger: Logger | undefined;

  constructor(options: RedisAuthThrottleOptions) {
    this.prefix = options.prefix ?? 'kiln';
    this.limit = options.limit ?? AUTH_THROTTLE_DEFAULTS.limit;
    this.windowMs = options.windowMs ?? AUTH_THROTTLE_DEFAULTS.windowMs;
    this.logger = options.logger;
    this.client = createRedisClient({ redisUrl: options.redisUrl, connectionName: `${this.prefix}-auththrottle`, logger: this.logger, lazy: true });
  }

  private keyOf(address: string): string {
    return `${this.prefix}:authfail:${address}`;
  }

  async blockedFor(address: string): Promise<number> {
    try {
      const key = this.keyOf(address);
      const [count, ttl] = await withDeadline(Promise.all([this.client.get(key), this.client.pttl(key)]), REDIS_CALL_BUDGET_MS, 'auth throttle read');
      return Number(count ?? 0) >= this.limit && ttl > 0 ? ttl : 0;
    } catch (error) {
      this.logger?.warn({ err: error }, 'auth throttle unavailable; not throttling');
      return 0;
    }
  }

  async fail(address: string): Promise<void> {
    try {
      await withDeadline(this.client.eval(FAIL_SCRIPT, 1, this.keyOf(address), String(this.windowMs)), REDIS_CALL_BUDGET_MS, 'auth throttle write');
    } catch (error) {
      this.logger?.warn({ err: error }, 'auth throttle unavailable; failure not counted');
    }
  }

  async close(): Promise<void> {
    await closeRedisClient(this.client);
  }
}
