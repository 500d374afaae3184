/**
 * The shared services some suites need (Redis, PostgreSQL). Where one is missing, its suites
 * skip with a printed reason on a developer's machine; with KILN_REQUIRE_SERVICES=1 (set by
 * .ci/run) a missing service fails the run instead, so CI never passes by skipping.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export const TEST_REDIS_URL = process.env.KILN_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const TEST_DATABASE_URL = process.env.KILN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REQUIRED = process.env.KILN_REQUIRE_SERVICES === '1' || process.env.KILN_REQUIRE_SERVICES === 'true';

/**
 * Redis db indexes by suite, so suites running side by side never see each other's keys
 * (each suite also uses its own key prefix and removes what it made).
 */
export const REDIS_DB = { queue: 11, events: 12, admission: 13, cluster: 14, misc: 15 } as const;

function reachable(url: string): Promise<boolean> {
  const parsed = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: parsed.hostname, port: Number(parsed.port || (parsed.protocol === 'redis:' ? 6379 : 5432)) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * `undefined` when the service answers; otherwise the reason to skip (printed). Throws under
 * KILN_REQUIRE_SERVICES, so that CI fails on a missing service.
 */
export async function serviceProblem(name: 'redis' | 'postgres'): Promise<string | undefined> {
  const url = name === 'redis' ? TEST_REDIS_URL : TEST_DATABASE_URL;
  if (await reachable(url)) return undefined;
  const reason = `${name} is not reachable at ${url.replace(/\/\/[^@/]*@/, '//***@')}`;
  if (REQUIRED) throw new Error(`${reason}, and KILN_REQUIRE_SERVICES is set`);
  process.stdout.write(`# skipping: ${reason}\n`);
  return reason;
}

/** The test Redis URL with a db index. */
export function redisUrl(db: number): string {
  const url = new URL(TEST_REDIS_URL);
  url.pathname = `/${db}`;
  return url.toString();
}

/** A prefix unique to this run, for Redis keys and queue names. */
export function uniquePrefix(name: string): string {
  return `kilntest-${name}-${randomBytes(4).toString('hex')}`;
}

/**
 * Creates a fresh PostgreSQL database for one suite; `drop` removes it (forcing out any
 * connection left behind).
 */
export async function freshPostgresDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const { default: pg } = await import('pg');
  const database = `kiln_test_${name.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${database}`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A loopback port nothing listens on (for failure-path tests). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Deletes the Redis keys matching `pattern` (a suite's own prefix), in batches. */
export async function deleteRedisKeys(url: string, pattern: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

/**
 * A redis-server of the test's own on `port` (loopback, nothing kept on disk), for tests that stop,
 * freeze (SIGSTOP) or restart Redis: the shared one is never touched. Resolves once it accepts
 * connections.
 */
export async function startPrivateRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('Ready to accept connections')) resolve();
    });
  });
  return child;
}

/** Why a private redis-server cannot be started here (printed), or undefined when it can; throws under KILN_REQUIRE_SERVICES. */
export function privateRedisProblem(): string | undefined {
  if (spawnSync('redis-server', ['--version']).status === 0) return undefined;
  const reason = 'redis-server is not on PATH';
  if (REQUIRED) throw new Error(`${reason}, and KILN_REQUIRE_SERVICES is set`);
  process.stdout.write(`# skipping: ${reason}\n`);
  return reason;
}
