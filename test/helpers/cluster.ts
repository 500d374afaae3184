/**
 * A real Kiln cluster for tests and `npm run cluster`: N `kiln api` and M `kiln worker` child
 * processes on one Redis (its own db index and key prefix), a fresh PostgreSQL database and an
 * S3 server (s3rver) on loopback.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ChildServer } from './child-server.ts';
import { TEST_KEY } from './kiln-server.ts';
import { startS3Server, type S3Server } from './s3-server.ts';
import { deleteRedisKeys, freshPostgresDatabase, REDIS_DB, redisUrl, uniquePrefix } from './services.ts';

export interface Cluster {
  readonly apis: ChildServer[];
  readonly workers: ChildServer[];
  readonly s3: S3Server;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  /** The environment every process of the cluster runs with. */
  readonly env: Record<string, string>;
  /** Starts one more worker (e.g. after one was killed). */
  addWorker(): Promise<ChildServer>;
  close(): Promise<void>;
}

/**
 * `count` distinct ports nothing listens on right now (KILN_PUBLIC_URL must be known before
 * start). All are held until every one is picked, so none is handed out twice.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => net.createServer());
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))));
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

export async function startCluster(
  options: { apis?: number; workers?: number; env?: Record<string, string>; redisUrl?: string } = {},
): Promise<Cluster> {
  const s3 = await startS3Server();
  const database = await freshPostgresDatabase('cluster');
  const redis = options.redisUrl ?? redisUrl(REDIS_DB.cluster);
  const prefix = uniquePrefix('cluster');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-cluster-'));
  const env: Record<string, string> = {
    ...s3.env,
    KILN_DATABASE_URL: database.url,
    KILN_REDIS_URL: redis,
    KILN_REDIS_PREFIX: prefix,
    KILN_API_KEYS: TEST_KEY,
    KILN_ALLOW_PRIVATE_URLS: 'true',
    KILN_STUDIO_THREADS: '1',
    KILN_QUEUE_LOCK_SECONDS: '3',
    // A worker stopped mid-task hands it back at once (the drain itself is tested on one process).
    KILN_SHUTDOWN_DRAIN_SECONDS: '0',
    KILN_RETRY_BASE_MS: '100',
    KILN_RETRY_MAX_MS: '400',
    ...options.env,
  };
  const children: ChildServer[] = [];
  const start = async (role: 'api' | 'worker', port = 0): Promise<ChildServer> => {
    const child = await ChildServer.start(dataDir, { ...env, KILN_PORT: String(port) }, role);
    children.push(child);
    return child;
  };
  try {
    const apis = await startApis(options.apis ?? 2, env, (port) => start('api', port), children);
    const workers = await Promise.all(Array.from({ length: options.workers ?? 2 }, () => start('worker')));
    return {
      apis,
      workers,
      s3,
      databaseUrl: database.url,
      redisUrl: redis,
      redisPrefix: prefix,
      env,
      addWorker: async () => {
        const worker = await start('worker');
        workers.push(worker);
        return worker;
      },
      close: () => stop(children, { s3, database, redis, prefix, dataDir }),
    };
  } catch (error) {
    await stop(children, { s3, database, redis, prefix, dataDir });
    throw error;
  }
}

/**
 * Starts `count` API processes on ports picked beforehand (KILN_PUBLIC_URL names the first, which
 * stands in for the load balancer, so it must be known before they start). A picked port is free
 * but not held: a server another test starts meanwhile may take it. Then the processes that did
 * start are stopped and all start again on fresh ports (up to three times).
 */
async function startApis(
  count: number,
  env: Record<string, string>,
  start: (port: number) => Promise<ChildServer>,
  children: ChildServer[],
): Promise<ChildServer[]> {
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(count);
    env.KILN_PUBLIC_URL = `http://127.0.0.1:${ports[0]}`;
    const started = await Promise.allSettled(ports.map((port) => start(port)));
    const failed = started.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
    if (failed.length === 0) return started.map((result) => (result as PromiseFulfilledResult<ChildServer>).value);
    const taken = failed.every((reason) => reason instanceof Error && reason.message.includes('EADDRINUSE'));
    if (!taken || attempt === 3) throw failed[0];
    for (const result of started) {
      if (result.status !== 'fulfilled') continue;
      children.splice(children.indexOf(result.value), 1);
      await result.value.kill('SIGTERM');
    }
  }
}

async function stop(
  children: readonly ChildServer[],
  parts: { s3: S3Server; database: { drop(): Promise<void> }; redis: string; prefix: string; dataDir: string },
): Promise<void> {
  await Promise.all(children.map((child) => (child.child.exitCode === null && child.child.signalCode === null ? child.kill('SIGTERM') : child.exited)));
  await parts.s3.close();
  await parts.database.drop();
  await deleteRedisKeys(parts.redis, `${parts.prefix}*`);
  await rm(parts.dataDir, { recursive: true, force: true });
}
