/**
 * ioredis connections for the event adapters, and the deadline every Redis call of this folder
 * runs under. Kept inside `events/` so that no Redis type leaks out of it.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import { maskUrl, parseRedisUrl } from '../shared/service-url.ts';

/** How long one call to Redis may take before the caller gives up (emit, watch, directory calls). */
export const REDIS_CALL_BUDGET_MS = 2_000;

/** Longest pause between reconnect attempts: a restarted Redis is found again within about a second. */
const MAX_RECONNECT_DELAY_MS = 1_000;

export interface RedisClientOptions {
  readonly redisUrl: string;
  /** Shown in `CLIENT LIST` (spaces and the like are replaced). */
  readonly connectionName: string;
  readonly logger: Logger | undefined;
  /** Connect at the first command rather than at once (a process that never uses it opens no socket). */
  readonly lazy?: boolean;
}

/**
 * A connection that keeps reconnecting forever (a restarted Redis is picked up again, and a
 * subscriber re-subscribes its channels: ioredis's `autoResubscribe`). Commands issued while it is
 * down wait in ioredis's offline queue, which is flushed with an error after two failed reconnect
 * attempts (`maxRetriesPerRequest: 1`) so that waiting commands do not pile up during an outage;
 * callers still bound each call with `withDeadline`.
 */
export function createRedisClient(options: RedisClientOptions): Redis {
  const target = parseRedisUrl(options.redisUrl);
  const client = new Redis({
    host: target.host,
    port: target.port,
    db: target.db,
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.tls ? { tls: { servername: target.host } } : {}),
    connectionName: options.connectionName.replace(/[^\w:.-]/g, '_'),
    connectTimeout: REDIS_CALL_BUDGET_MS,
    maxRetriesPerRequest: 1,
    autoResubscribe: true,
    lazyConnect: options.lazy ?? false,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 50),
  });
  const where = maskUrl(options.redisUrl);
  // ioredis reports every failed reconnect attempt; log the first failure of an outage and the
  // recovery, not one line per attempt.
  let healthy = true;
  client.on('error', (error: unknown) => {
    if (!healthy) return;
    healthy = false;
    options.logger?.warn({ err: error, redis: where, connection: options.connectionName }, 'Redis connection lost');
  });
  client.on('ready', () => {
    if (healthy) return;
    healthy = true;
    options.logger?.info({ redis: where, connection: options.connectionName }, 'Redis connection restored');
  });
  return client;
}

/** Closes a connection: QUIT when it is up (bounded), otherwise drops it at once. */
export async function closeRedisClient(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    try {
      await withDeadline(client.quit(), REDIS_CALL_BUDGET_MS / 2, 'QUIT');
      return;
    } catch {
      // fall through: the connection is dropped below
    }
  }
  client.disconnect();
}

/** Rejects with a timeout error when `promise` has not settled within `ms` (the promise itself runs on). */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis ${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
