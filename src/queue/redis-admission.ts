import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { systemClock, type Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { maskUrl } from '../shared/service-url.ts';
import { AdmissionUnavailableError, type Admission, type ReserveOutcome } from './admission.ts';
import { checkCount } from './memory-admission.ts';
import { closeRedisClient, createRedisClient, DEFAULT_PRODUCER_TIMEOUT_MS, whenReady, whenReadyInTime, withDeadline } from './redis-client.ts';

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
// reserves can never pass the capacity together. Values are `images:timestampMs:nonce` (the
// nonce names the call that made it, or the last that found it kept: a take-back by a call whose
// answer was lost never removes a reservation a later call relies on; values written before the
// nonce existed lack one). Answers 1 reserved, 2 kept (the task held one already), 0 full.
const RESERVE = `
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local images, at = string.match(held, '^(%d+):(%d+)')
  if images then redis.call('HSET', KEYS[1], ARGV[1], images .. ':' .. at .. ':' .. ARGV[5]) end
  return 2
end
local images = tonumber(ARGV[2])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if total + images > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[4] .. ':' .. ARGV[5])
redis.call('INCRBY', KEYS[2], images)
return 1`;

/** Drops the task's reservation; with `onlyNonce`, only when that call made it. */
const releaseScript = (onlyNonce: boolean): string => `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
${onlyNonce ? "local suffix = ':' .. ARGV[2]\nif string.sub(value, -string.len(suffix)) ~= suffix then return 0 end" : ''}
local images = tonumber(string.match(value, '^(%d+):'))
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
else
  redis.call('DECRBY', KEYS[2], images)
end
return images`;

interface AdmissionCommands {
  kilnAdmissionReserve(hash: string, total: string, taskUUID: string, images: number, capacity: number, now: number, nonce: string): Promise<number>;
  kilnAdmissionRelease(hash: string, total: string, taskUUID: string): Promise<number>;
  kilnAdmissionReleaseMine(hash: string, total: string, taskUUID: string, nonce: string): Promise<number>;
}

/** Tries to take back a reservation whose reserve went unanswered: every this often, so many times. */
const TAKE_BACK_EVERY_MS = 1_000;
const TAKE_BACK_TRIES = 60;

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
    this.client.defineCommand('kilnAdmissionRelease', { numberOfKeys: 2, lua: releaseScript(false) });
    this.client.defineCommand('kilnAdmissionReleaseMine', { numberOfKeys: 2, lua: releaseScript(true) });
    this.commands = this.client as unknown as AdmissionCommands;
  }

  async reserve(taskUUID: string, images: number, options: { force?: boolean } = {}): Promise<ReserveOutcome> {
    checkCount(images, 'images');
    // Forced: the same script, with a capacity nothing reaches.
    const capacity = options.force ? Number.MAX_SAFE_INTEGER : this.capacity;
    const now = this.clock.now();
    const nonce = randomBytes(6).toString('hex');
    let sent = false;
    let answer: number;
    try {
      answer = await this.call('reserve', () => {
        sent = true;
        return this.commands.kilnAdmissionReserve(this.hashKey, this.totalKey, taskUUID, images, capacity, now, nonce);
      });
    } catch (error) {
      // Unanswered is not undone: a Redis that stalled (rather than dropped the connection) runs
      // the script when it wakes, for a caller already told "unavailable". Take back what this
      // call may have reserved, and only that, once Redis answers (nothing when it never went out).
      if (sent) this.takeBack(taskUUID, nonce, TAKE_BACK_TRIES);
      throw error;
    }
    return answer === 1 ? 'reserved' : answer === 2 ? 'kept' : 'full';
  }

  private takeBack(taskUUID: string, nonce: string, tries: number): void {
    if (this.closed || tries <= 0) return;
    // Sent after the reserve on the same connection, so Redis runs it after the reserve.
    whenReady(this.client)
      .then(() => this.commands.kilnAdmissionReleaseMine(this.hashKey, this.totalKey, taskUUID, nonce))
      .catch(() => {
        setTimeout(() => this.takeBack(taskUUID, nonce, tries - 1), TAKE_BACK_EVERY_MS).unref();
      });
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
      .filter(([, value]) => Number(value.split(':')[1]) < before)
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
      (late) => whenReadyInTime(this.client, late, operation),
      this.timeoutMs,
      (message, cause) => new AdmissionUnavailableError(`admission ${what} failed on Redis at ${this.where}: ${message}`, { cause }),
    );
  }
}
