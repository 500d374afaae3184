import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import { maskUrl } from '../shared/service-url.ts';
import { RateLimiterUnavailableError, type RateLimiter } from './rate-limiter.ts';
import { closeRedisClient, createRedisClient, DEFAULT_PRODUCER_TIMEOUT_MS, whenReadyInTime, withDeadline } from './redis-client.ts';

export interface RedisRateLimiterOptions {
  readonly redisUrl: string;
  /** Buckets are `<prefix>:rate:<name>` hashes. Default `kiln`. */
  readonly prefix?: string;
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

// Refill, then take: one script, so two API processes cannot take the same token. The time is
// Redis's own (TIME), so the processes' clocks do not matter. Answers 0 or the ms to wait.
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait`;

interface RateCommands {
  kilnRateTake(key: string, rate: number, burst: number): Promise<number>;
}

/** Token buckets in Redis, shared by every API process of a deployment. */
export class RedisRateLimiter implements RateLimiter {
  private readonly client: Redis;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly where: string;
  private closed = false;

  constructor(options: RedisRateLimiterOptions) {
    this.prefix = options.prefix ?? 'kiln';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_PRODUCER_TIMEOUT_MS;
    this.where = maskUrl(options.redisUrl);
    this.client = createRedisClient(options.redisUrl, {
      role: 'producer',
      connectionName: 'kiln-rate-limiter',
      timeoutMs: this.timeoutMs,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
    this.client.defineCommand('kilnRateTake', { numberOfKeys: 1, lua: TAKE });
  }

  take(name: string, rate: number, burst: number): Promise<number> {
    if (this.closed) return Promise.reject(new RateLimiterUnavailableError('the rate limiter is closed'));
    return withDeadline(
      (late) => whenReadyInTime(this.client, late, async () => Number(await (this.client as unknown as RateCommands).kilnRateTake(`${this.prefix}:rate:${name}`, rate, burst))),
      this.timeoutMs,
      (message, cause) => new RateLimiterUnavailableError(`rate limiter failed on Redis at ${this.where}: ${message}`, { cause }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeRedisClient(this.client);
  }
}
