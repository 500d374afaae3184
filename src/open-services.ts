/**
 * Opens the adapters behind the ports from the configuration: SQLite or PostgreSQL, local
 * files or S3, in-process or Redis (BullMQ queue, admission, events, sessions). Part of the
 * wiring, like `compose.ts`; each adapter owns its connections and closes them.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { Config } from './config/config.ts';
import { LocalSessionDirectory, type SessionDirectory } from './events/session-directory.ts';
import { MemoryTaskEvents, type TaskEventBus } from './events/task-events.ts';
import { RedisSessionDirectory } from './events/redis-session-directory.ts';
import { RedisTaskEvents } from './events/redis-task-events.ts';
import type { Admission } from './queue/admission.ts';
import { BullmqQueue } from './queue/bullmq-queue.ts';
import { MemoryAdmission } from './queue/memory-admission.ts';
import { MemoryQueue } from './queue/memory-queue.ts';
import { RedisAdmission } from './queue/redis-admission.ts';
import type { TaskQueue } from './queue/task-queue.ts';
import type { Logger } from './shared/logger.ts';
import { maskUrl } from './shared/service-url.ts';
import { LocalObjectStore, type ObjectStore } from './store/object-store.ts';
import { openTaskStore } from './store/open-task-store.ts';
import { S3ObjectStore } from './store/s3-object-store.ts';
import type { TaskStore } from './store/task-store.ts';

/** A shared service could not be reached at start; the message names it (secrets masked). */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

export interface Services {
  readonly store: TaskStore;
  readonly objects: ObjectStore;
  readonly queue: TaskQueue;
  readonly admission: Admission;
  readonly events: TaskEventBus;
  readonly sessions: SessionDirectory;
  /** Closes everything opened here, in reverse order. */
  close(): Promise<void>;
}

/** Fails fast, naming the URL, when Redis does not answer a PING within a few seconds. */
async function checkRedis(url: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new StartupError(`Redis is not reachable at ${maskUrl(url)}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    client.disconnect();
  }
}

export async function openServices(config: Config, logger: Logger): Promise<Services> {
  const opened: { close(): Promise<void> }[] = [];
  const keep = <T extends { close(): Promise<void> }>(adapter: T): T => {
    opened.push(adapter);
    return adapter;
  };
  const close = async (): Promise<void> => {
    for (const adapter of opened.reverse()) await adapter.close().catch((error: unknown) => logger.warn({ err: error }, 'closing an adapter failed'));
  };
  try {
    if (!config.databaseUrl || !config.s3) await mkdir(config.dataDir, { recursive: true });
    const store = keep(
      await openTaskStore({
        ...(config.databaseUrl === undefined ? {} : { databaseUrl: config.databaseUrl }),
        sqliteFile: path.join(config.dataDir, 'kiln.sqlite'),
        poolSize: config.databasePool,
        logger,
      }).catch((error: unknown) => {
        throw new StartupError(error instanceof Error ? error.message : String(error), { cause: error });
      }),
    );
    let objects: ObjectStore;
    if (config.s3) {
      const s3 = keep(
        new S3ObjectStore({
          bucket: config.s3.bucket,
          region: config.s3.region,
          forcePathStyle: config.s3.forcePathStyle,
          prefix: config.s3.prefix,
          ...(config.s3.endpoint === undefined ? {} : { endpoint: config.s3.endpoint }),
        }),
      );
      await s3.check().catch((error: unknown) => {
        throw new StartupError(error instanceof Error ? error.message : String(error), { cause: error });
      });
      objects = s3;
    } else {
      await mkdir(path.join(config.dataDir, 'objects'), { recursive: true });
      objects = keep(new LocalObjectStore(path.join(config.dataDir, 'objects')));
    }
    if (!config.redisUrl) {
      return {
        store,
        objects,
        queue: keep(new MemoryQueue({ onGiveUp: (job, error) => logger.error({ taskUUID: job.id, err: error }, 'task attempts exhausted') })),
        admission: keep(new MemoryAdmission({ capacity: config.queueMax })),
        events: keep(new MemoryTaskEvents()),
        sessions: keep(new LocalSessionDirectory()),
        close,
      };
    }
    await checkRedis(config.redisUrl);
    const redis = { redisUrl: config.redisUrl, prefix: config.redisPrefix, logger };
    return {
      store,
      objects,
      queue: keep(new BullmqQueue({ ...redis, lockMs: config.queueLockMs })),
      admission: keep(new RedisAdmission({ ...redis, capacity: config.queueMax })),
      events: keep(new RedisTaskEvents(redis)),
      sessions: keep(new RedisSessionDirectory(redis)),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
