import type { Redis } from 'ioredis';
import { systemClock, type Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { maskUrl } from '../shared/service-url.ts';
import { AdmissionUnavailableError, type Admission, type ReserveOutcome } from './admission.ts';
import { checkCount } from './memory-admission.ts';
import { closeRedisClient, createRedisClient, DEFAULT_PRODUCER_TIMEOUT_MS, whenReady, withDeadline } from './redis-client.ts';

export interface RedisAdmissionOptions {
  readonly redisUrl: string;
  /** Images that may be reserved at once, across every process sharing `prefix`. */
  readonly capacity: number;
  /** Deployment key prefix: the keys are `<prefix>:admission:reservations` (hash) and `<prefix>:admission:reserved`. Default `kiln`. */
  readonly prefix?: string;
  /** A call that gets no answer within this many ms fails with `AdmissionUnavailableError`. Default 2000. */
  readonly timeoutMs?: number;
  /** Stamps reservations for `listOlderThan`. Default: the system clock. */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

// One script per call, so the check and the update are atomic across processes: concurrent
// reserves can never pass the capacity together. Values are `images:timestampMs`. Answers
// 1 reserved, 2 kept (the task held one already), 0 full.
const RESERVE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 2 end
local images = tonumber(ARGV[2])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if total + images > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[4])
redis.call('INCRBY', KEYS[2], images)
return 1`;

const RELEASE = `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local images = tonumber(string.match(value, '^(%d+):'))
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
else
  redis.call('DECRBY', KEYS[2], images)
end
return images`;

interface AdmissionCommands {
  kilnAdmissionReserve(hash: string, total: string, taskUUID: string, images: number, capacity: number, now: number): Promise<number>;
  kilnAdmissionRelease(hash: string, total: string, taskUUID: string): Promise<number>;
}

/**
 * Admission shared by every API process through Redis: one hash of reservations plus their
 * total, changed only by Lua scripts. Calls fail fast (`timeoutMs`) with
 * `AdmissionUnavailableError` while Redis is down; the client reconnects by itself.
 */
export class RedisAdmission implements Admission {
  private readonly client: Redis;
  private readonly commands: AdmissionCommands;
  private readonly hashKey: string;
  private readonly totalKey: string;
  private readonly capacity: number;
  private readonly timeoutMs: number;
  private readonly clock: Clock;
  private readonly where: string;
  private closed = false;

  constructor(options: RedisAdmissionOptions) {
    this.capacity = checkCount(options.capacity, 'capacity');
    const prefix = options.prefix ?? 'kiln';
    this.hashKey = `${prefix}:admission:reservations`;
    this.totalKey = `${prefix}:admission:reserved`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_PRODUCER_TIMEOUT_MS;
    this.clock = options.clock ?? systemClock;
    this.where = maskUrl(options.redisUrl);
    this.client = createRedisClient(options.redisUrl, {
      role: 'producer',
      connectionName: 'kiln-admission',
      timeoutMs: this.timeoutMs,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
    this.client.defineCommand('kilnAdmissionReserve', { numberOfKeys: 2, lua: RESERVE });
    this.client.defineCommand('kilnAdmissionRelease', { numberOfKeys: 2, lua: RELEASE });
    this.commands = this.client as unknown as AdmissionCommands;
  }

  async reserve(taskUUID: string, images: number): Promise<ReserveOutcome> {
    checkCount(images, 'images');
    const now = this.clock.now();
    const answer = await this.call('reserve', () =>
      this.commands.kilnAdmissionReserve(this.hashKey, this.totalKey, taskUUID, images, this.capacity, now),
    );
    return answer === 1 ? 'reserved' : answer === 2 ? 'kept' : 'full';
  }

  async release(taskUUID: string): Promise<void> {
    await this.call('release', () => this.commands.kilnAdmissionRelease(this.hashKey, this.totalKey, taskUUID));
  }

  async reserved(): Promise<number> {
    const total = await this.call('reserved', () => this.client.get(this.totalKey));
    return total === null ? 0 : Number(total);
  }

  /** Reads the whole hash: fine for admission-sized sets (thousands of tasks at most). */
  async listOlderThan(before: number): Promise<string[]> {
    const all = await this.call('listOlderThan', () => this.client.hgetall(this.hashKey));
    return Object.entries(all)
      .filter(([, value]) => Number(value.slice(value.indexOf(':') + 1)) < before)
      .map(([taskUUID]) => taskUUID);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeRedisClient(this.client);
  }

  private call<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new AdmissionUnavailableError('admission is closed'));
    return withDeadline(
      async () => {
        await whenReady(this.client);
        return operation();
      },
      this.timeoutMs,
      (message, cause) => new AdmissionUnavailableError(`admission ${what} failed on Redis at ${this.where}: ${message}`, { cause }),
    );
  }
}
