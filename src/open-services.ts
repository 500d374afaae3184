/**
 * Opens the adapters behind the ports from the configuration: SQLite or PostgreSQL, local
 * files or S3, in-process or Redis (BullMQ queue, admission, events, sessions). Part of the
 * wiring, like `compose.ts`; each adapter owns its connections and closes them. The Redis and
 * S3 adapters (and their client libraries, a few hundred milliseconds of loading) are imported
 * only when the configuration asks for them, so the embedded defaults start without them.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config/config.ts';
import { MemoryAuthThrottle, type AuthThrottle } from './events/auth-throttle.ts';
import { LocalSessionDirectory, type SessionDirectory } from './events/session-directory.ts';
import { MemoryTaskEvents, type TaskEventBus } from './events/task-events.ts';
import type { Admission } from './queue/admission.ts';
import { MemoryAdmission } from './queue/memory-admission.ts';
import { MemoryQueue } from './queue/memory-queue.ts';
import type { TaskQueue } from './queue/task-queue.ts';
import type { Logger } from './shared/logger.ts';
import { maskUrl } from './shared/service-url.ts';
import { LocalObjectStore, type ObjectStore } from './store/object-store.ts';
import { openTaskStore } from './store/open-task-store.ts';
import type { TaskStore } from './store/task-store.ts';
import { hmacKeyHasher, sha256KeyHasher, type KeyHasher } from './tasks/api-keys.ts';

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
  /** Failed authentications per client address: in this process (`serve`), or in Redis for a cluster. */
  readonly authThrottle: AuthThrottle;
  /** Closes everything opened here, in reverse order. */
  close(): Promise<void>;
}

/** Fails fast, naming the URL, when Redis does not answer a PING within a few seconds. */
async function checkRedis(url: string): Promise<void> {
  const { Redis } = await import('ioredis');
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

/**
 * How API keys are hashed: HMAC-SHA256 with KILN_KEY_HASH_SECRET, or with a secret kept in
 * `<data dir>/key-hash-secret` (0600, made at first use) when the store is a local SQLite file.
 * A PostgreSQL store without KILN_KEY_HASH_SECRET has no data dir every process shares, so it
 * falls back to bare SHA-256 with a warning.
 */
export async function openKeyHasher(config: Config, logger: Logger | undefined): Promise<KeyHasher> {
  if (config.keyHashSecret !== undefined) return hmacKeyHasher(config.keyHashSecret);
  if (config.databaseUrl !== undefined) {
    logger?.warn('KILN_KEY_HASH_SECRET is not set: API keys are stored as bare SHA-256 hashes. Set it (the same on every process).');
    return sha256KeyHasher;
  }
  await privateDataDir(config.dataDir);
  const file = path.join(config.dataDir, 'key-hash-secret');
  let secret = await readFile(file, 'utf8').then(
    (text) => text.trim(),
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    },
  );
  if (secret === '') {
    secret = randomBytes(32).toString('hex');
    // `wx`: two processes starting at once cannot both write it; the loser reads the winner's.
    await writeFile(file, `${secret}
`, { mode: 0o600, flag: 'wx' }).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      secret = (await readFile(file, 'utf8')).trim();
    });
  }
  await chmod(file, 0o600);
  return hmacKeyHasher(secret);
}

/** Creates the data dir readable by its owner only (0700), and tightens one made earlier. */
async function privateDataDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** 0600 on the SQLite file and its journal files (those that exist). */
async function privateFiles(file: string): Promise<void> {
  for (const name of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    await chmod(name, 0o600).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
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
    if (!config.databaseUrl || !config.s3) await privateDataDir(config.dataDir);
    const store = keep(
      await openTaskStore({
        ...(config.databaseUrl === undefined ? {} : { databaseUrl: config.databaseUrl }),
        sqliteFile: path.join(config.dataDir, 'kiln.sqlite'),
        poolSize: config.databasePool,
        preparedStatements: config.databasePrepared,
        logger,
        backgroundCheckpoints: true,
      }).catch((error: unknown) => {
        throw new StartupError(error instanceof Error ? error.message : String(error), { cause: error });
      }),
    );
    // The SQLite file holds key hashes and webhook secrets: readable by its owner only.
    if (!config.databaseUrl) await privateFiles(path.join(config.dataDir, 'kiln.sqlite'));
    let objects: ObjectStore;
    if (config.s3) {
      const { S3ObjectStore } = await import('./store/s3-object-store.ts');
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
        // One process: counting here is exact. (Several `serve` processes behind one balancer
        // would each count on their own; a cluster uses Redis below.)
        authThrottle: keep(new MemoryAuthThrottle({ limit: config.limits.authFailuresPerMinute })),
        close,
      };
    }
    await checkRedis(config.redisUrl);
    const [{ BullmqQueue }, { RedisAdmission }, { RedisTaskEvents }, { RedisSessionDirectory }, { RedisAuthThrottle }] = await Promise.all([
      import('./queue/bullmq-queue.ts'),
      import('./queue/redis-admission.ts'),
      import('./events/redis-task-events.ts'),
      import('./events/redis-session-directory.ts'),
      import('./events/redis-auth-throttle.ts'),
    ]);
    const redis = { redisUrl: config.redisUrl, prefix: config.redisPrefix, logger };
    return {
      store,
      objects,
      queue: keep(new BullmqQueue({ ...redis, lockMs: config.queueLockMs })),
      admission: keep(new RedisAdmission({ ...redis, capacity: config.queueMax })),
      events: keep(new RedisTaskEvents(redis)),
      sessions: keep(new RedisSessionDirectory(redis)),
      authThrottle: keep(new RedisAuthThrottle({ ...redis, limit: config.limits.authFailuresPerMinute })),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
