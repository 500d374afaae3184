/**
 * The WebSocket session directory over Redis, so that a session can resume on another API
 * process. One hash per session, `<prefix>:ws:<sessionId>`:
 *
 * - `apiKeyId` → the key the session belongs to;
 * - `owner` → the API process that holds it now (the last one a socket attached to);
 * - `t:<taskUUID>` → an open task (lower-case taskUUID);
 * - `i:["<taskUUID>","<itemKey>"]` → an item of that task reached the client.
 *
 * One key per session keeps its whole record under a single TTL, so parts of a session can
 * never outlive each other; each write and its PEXPIRE go in one MULTI.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import { closeRedisClient, createRedisClient, REDIS_CALL_BUDGET_MS, withDeadline } from './redis-clients.ts';
import type { SessionDirectory, SessionSnapshot } from './session-directory.ts';
import { EventBusUnavailableError } from './task-events.ts';

export interface RedisSessionDirectoryOptions {
  /** `redis://[user:password@]host[:port][/db]` (or `rediss://`). */
  readonly redisUrl: string;
  /** Namespace of the keys; API processes that share sessions must share it. Default `kiln`. */
  readonly prefix?: string;
  readonly logger?: Logger;
}

const API_KEY_FIELD = 'apiKeyId';
const OWNER_FIELD = 'owner';
const TASK_FIELD = 't:';
const ITEM_FIELD = 'i:';

/**
 * Removes a task's marker and its items in one step (HKEYS + HDEL, in chunks to stay within
 * Lua's stack), unless another process holds the session now (ARGV[3]: the caller).
 */
const FINISH_SCRIPT = `
local owner = redis.call('HGET', KEYS[1], '${OWNER_FIELD}')
if owner and owner ~= ARGV[3] then return 0 end
local doomed = { ARGV[1] }
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, #ARGV[2]) == ARGV[2] then doomed[#doomed + 1] = field end
end
for i = 1, #doomed, 500 do
  redis.call('HDEL', KEYS[1], unpack(doomed, i, math.min(i + 499, #doomed)))
end
return #doomed`;

export class RedisSessionDirectory implements SessionDirectory {
  readonly shared = true;
  private readonly prefix: string;
  private readonly logger: Logger | undefined;
  private readonly client: Redis;

  constructor(options: RedisSessionDirectoryOptions) {
    this.prefix = options.prefix ?? 'kiln';
    this.logger = options.logger;
    this.client = createRedisClient({ redisUrl: options.redisUrl, connectionName: `${this.prefix}-sessions`, logger: this.logger });
  }

  async open(sessionId: string, apiKeyId: string, taskUUID: string, ttlMs: number): Promise<void> {
    const key = this.keyOf(sessionId);
    const write = this.client
      .multi()
      .hset(key, API_KEY_FIELD, apiKeyId, taskField(taskUUID), '1')
      .pexpire(key, ttlOf(ttlMs))
      .exec();
    await this.quietly(write, 'open', sessionId, taskUUID);
  }

  async sent(sessionId: string, taskUUID: string, itemKey: string, ttlMs: number): Promise<void> {
    const key = this.keyOf(sessionId);
    const write = this.client.multi().hset(key, itemField(taskUUID, itemKey), '1').pexpire(key, ttlOf(ttlMs)).exec();
    await this.quietly(write, 'sent', sessionId, taskUUID);
  }

  async claim(sessionId: string, apiKeyId: string, owner: string, ttlMs: number): Promise<void> {
    const key = this.keyOf(sessionId);
    const write = this.client.multi().hset(key, API_KEY_FIELD, apiKeyId, OWNER_FIELD, owner).pexpire(key, ttlOf(ttlMs)).exec();
    await this.quietly(write, 'claim', sessionId, undefined);
  }

  async finish(sessionId: string, taskUUID: string, owner: string): Promise<void> {
    const write = this.client.eval(FINISH_SCRIPT, 1, this.keyOf(sessionId), taskField(taskUUID), itemPrefix(taskUUID), owner);
    await this.quietly(write, 'finish', sessionId, taskUUID);
  }

  async touch(sessionId: string, ttlMs: number): Promise<void> {
    await this.quietly(this.client.pexpire(this.keyOf(sessionId), ttlOf(ttlMs)), 'touch', sessionId, undefined);
  }

  async find(sessionId: string): Promise<SessionSnapshot | undefined> {
    let fields: Record<string, string>;
    try {
      fields = await withDeadline(this.client.hgetall(this.keyOf(sessionId)), REDIS_CALL_BUDGET_MS, 'HGETALL');
    } catch (error) {
      throw new EventBusUnavailableError('The session directory (Redis) cannot be reached.', { cause: error });
    }
    const apiKeyId = fields[API_KEY_FIELD];
    // A hash without its key id holds only late `sent` records of an expired session.
    if (apiKeyId === undefined) return undefined;
    const tasks = new Map<string, Set<string>>();
    for (const field of Object.keys(fields)) {
      if (field.startsWith(TASK_FIELD)) {
        const taskUUID = field.slice(TASK_FIELD.length);
        if (!tasks.has(taskUUID)) tasks.set(taskUUID, new Set());
      }
    }
    for (const field of Object.keys(fields)) {
      const item = parseItemField(field);
      if (item) tasks.get(item.taskUUID)?.add(item.itemKey);
    }
    const owner = fields[OWNER_FIELD];
    return { apiKeyId, tasks, ...(owner === undefined ? {} : { owner }) };
  }

  async close(): Promise<void> {
    await closeRedisClient(this.client);
  }

  private keyOf(sessionId: string): string {
    return `${this.prefix}:ws:${sessionId}`;
  }

  /** A lost record only costs the client a getResponse after a resume: log it, never fail the caller. */
  private async quietly(write: Promise<unknown>, what: string, sessionId: string, taskUUID: string | undefined): Promise<void> {
    try {
      const replies = await withDeadline(write, REDIS_CALL_BUDGET_MS, what);
      // MULTI answers [error, reply] pairs; an error inside the transaction does not reject.
      if (Array.isArray(replies)) {
        for (const reply of replies) if (Array.isArray(reply) && reply[0]) throw reply[0];
      }
    } catch (error) {
      this.logger?.warn({ err: error, sessionId, ...(taskUUID === undefined ? {} : { taskUUID }) }, `session directory: ${what} not recorded`);
    }
  }
}

/** PEXPIRE wants a positive integer. */
function ttlOf(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs));
}

function taskField(taskUUID: string): string {
  return TASK_FIELD + taskUUID.toLowerCase();
}

/** JSON keeps any character of a taskUUID or item key unambiguous. */
function itemField(taskUUID: string, itemKey: string): string {
  return ITEM_FIELD + JSON.stringify([taskUUID.toLowerCase(), itemKey]);
}

/** What every item field of the task starts with: `i:["<taskUUID>",`. */
function itemPrefix(taskUUID: string): string {
  return `${ITEM_FIELD}${JSON.stringify([taskUUID.toLowerCase()]).slice(0, -1)},`;
}

function parseItemField(field: string): { taskUUID: string; itemKey: string } | undefined {
  if (!field.startsWith(ITEM_FIELD)) return undefined;
  try {
    const parsed: unknown = JSON.parse(field.slice(ITEM_FIELD.length));
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string') {
      return { taskUUID: parsed[0], itemKey: parsed[1] };
    }
  } catch {
    // not one of ours
  }
  return undefined;
}
