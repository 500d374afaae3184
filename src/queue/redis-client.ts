/**
 * ioredis clients for Kiln's Redis-backed adapters, built from a `redis://` URL. Two roles:
 *
 * - `producer` (API processes: enqueue, counts, cancel, admission): no offline queue, a command
 *   timeout and one retry per request, so a call made while Redis is down fails within about
 *   `timeoutMs` instead of hanging; callers turn that into a 503.
 * - `worker` (BullMQ workers): `maxRetriesPerRequest: null` and an offline queue, as BullMQ
 *   requires, so commands wait out an outage and processing resumes when Redis is back.
 *
 * Both reconnect by themselves (backoff capped at 2 s) and log connection errors at most once per
 * 10 s, since ioredis reports the same refusal on every reconnect attempt.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import { maskUrl, parseRedisUrl } from '../shared/service-url.ts';

export type RedisRole = 'producer' | 'worker';

export interface RedisClientOptions {
  readonly role: RedisRole;
  /** Shown in `CLIENT LIST`. */
  readonly connectionName?: string;
  /** Producer only: connect and per-command timeout in ms. Default 2000. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

/** How long a producer call may take before the backend counts as unreachable. */
export const DEFAULT_PRODUCER_TIMEOUT_MS = 2_000;
const ERROR_LOG_INTERVAL_MS = 10_000;

export function createRedisClient(url: string, options: RedisClientOptions): Redis {
  const target = parseRedisUrl(url);
  const timeoutMs = options.timeoutMs ?? DEFAULT_PRODUCER_TIMEOUT_MS;
  const producer = options.role === 'producer';
  const client = new Redis({
    host: target.host,
    port: target.port,
    db: target.db,
    // A reconnect every 2 s at most: Redis coming back is noticed quickly, and a down Redis is
    // not hammered.
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
    connectTimeout: producer ? timeoutMs : 10_000,
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.tls ? { tls: { servername: target.host } } : {}),
    ...(options.connectionName === undefined ? {} : { connectionName: options.connectionName }),
    // Producer: fail fast. Worker: BullMQ requires commands to wait out an outage.
    ...(producer
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: timeoutMs }
      : { enableOfflineQueue: true, maxRetriesPerRequest: null }),
  });
  watchConnection(client, url, options);
  return client;
}

/**
 * Closes a client without waiting on a dead server: QUIT (bounded) when connected, a plain
 * disconnect otherwise. Never rejects.
 */
export async function closeRedisClient(client: Redis, timeoutMs = 1_000): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.quit().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
  client.disconnect();
}

const readiness = new WeakMap<Redis, Promise<void>>();

/**
 * Waits for the connection (see `whenReady`), then sends `command` unless the caller's deadline
 * passed meanwhile: a command parked while Redis was down would otherwise run on reconnect for a
 * caller long since answered "unavailable" (a reservation, a rate token taken for nothing).
 */
export async function whenReadyInTime<T>(client: Redis, late: () => boolean, command: () => Promise<T>): Promise<T> {
  await whenReady(client);
  if (late()) throw new Error('not sent: its deadline passed while Redis was unreachable');
  return command();
}

/**
 * Resolves once the client is connected (at once if it is). A producer client refuses commands
 * until then, so its first calls must wait here, under their deadline. One shared listener per
 * client, however many callers wait during an outage.
 */
export function whenReady(client: Redis): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  let pending = readiness.get(client);
  if (!pending) {
    pending = new Promise<void>((resolve) => {
      client.once('ready', () => {
        readiness.delete(client);
        resolve();
      });
    });
    readiness.set(client, pending);
  }
  return pending;
}

/**
 * Runs a producer operation with a deadline. Any failure, or no answer within `timeoutMs`,
 * becomes the error `unavailable` builds (the adapter's *Unavailable error), with the cause kept.
 * The operation is told whether the deadline has passed (`late`): one that waited for the
 * connection must not send its command once its caller has been answered "unavailable".
 */
export async function withDeadline<T>(
  operation: (late: () => boolean) => Promise<T>,
  timeoutMs: number,
  unavailable: (message: string, cause: unknown) => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let expired = false;
  const late = (): boolean => expired;
  const pending = Promise.resolve().then(() => operation(late));
  try {
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          expired = true;
          reject(new Error(`no answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }),
    ]);
  } catch (error) {
    // The abandoned operation may still settle later; its outcome no longer matters.
    pending.catch(() => undefined);
    throw unavailable(error instanceof Error ? error.message : String(error), error);
  } finally {
    clearTimeout(timer);
  }
}

const CONNECTION_TROUBLE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|Connection is closed|Stream isn't writeable|MaxRetriesPerRequest|Command timed out|connect ETIMEDOUT/i;

/** True for errors that only say Redis is unreachable (already logged, throttled, by the client). */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return CONNECTION_TROUBLE.test(error.message) || (typeof code === 'string' && CONNECTION_TROUBLE.test(code));
}

function watchConnection(client: Redis, url: string, options: RedisClientOptions): void {
  const where = maskUrl(url);
  let lastLogged = 0;
  let failing = false;
  // Without an 'error' listener ioredis prints every failed reconnect to stderr.
  client.on('error', (error: Error) => {
    failing = true;
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_INTERVAL_MS) return;
    lastLogged = now;
    options.logger?.warn({ err: error, redis: where, role: options.role }, 'redis connection error');
  });
  client.on('ready', () => {
    if (!failing) return;
    failing = false;
    lastLogged = 0;
    options.logger?.info({ redis: where, role: options.role }, 'redis connection restored');
  });
}
