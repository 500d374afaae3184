/**
 * `kiln serve | api | worker`: what each role refuses at start, how it fails when a shared
 * service is out of reach, and what a worker serves.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/config.ts';
import { ChildServer } from './helpers/child-server.ts';
import { kilnNodeArgs } from './helpers/compiled-kiln.ts';
import { startS3Server, type S3Server } from './helpers/s3-server.ts';
import { closedPort, freshPostgresDatabase, REDIS_DB, redisUrl, serviceProblem } from './helpers/services.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

const ROOT = REPO_ROOT;
const CLUSTER = {
  KILN_DATABASE_URL: 'postgres://kiln@db:5432/kiln',
  KILN_REDIS_URL: 'redis://redis:6379/0',
  KILN_S3_BUCKET: 'images',
  KILN_PUBLIC_URL: 'https://images.example.com',
};

function problemsOf(env: Record<string, string>, role: 'serve' | 'api' | 'worker'): readonly string[] {
  try {
    loadConfig(env, role);
    return [];
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
}

/** Runs `kiln <role>` to its exit; returns the exit code and stderr. */
function runToExit(role: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [...kilnNodeArgs(), role], { cwd: ROOT, env: { ...process.env, KILN_PORT: '0', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr, ms: performance.now() - started })));
}

test('cluster roles refuse unsafe combinations with one line each', () => {
  assert.deepEqual(problemsOf(CLUSTER, 'api'), []);
  assert.deepEqual(problemsOf(CLUSTER, 'worker'), []);
  assert.deepEqual(problemsOf({}, 'serve'), []);
  const { KILN_REDIS_URL: _redis, ...noRedis } = CLUSTER;
  assert.match(problemsOf(noRedis, 'api').join('\n'), /kiln api needs KILN_REDIS_URL/);
  const { KILN_DATABASE_URL: _db, ...noDatabase } = CLUSTER;
  assert.match(problemsOf(noDatabase, 'worker').join('\n'), /kiln worker needs KILN_DATABASE_URL: a SQLite file cannot be shared/);
  const { KILN_S3_BUCKET: _s3, ...noS3 } = CLUSTER;
  assert.match(problemsOf(noS3, 'api').join('\n'), /needs KILN_S3_BUCKET: local image files cannot be shared/);
  const { KILN_PUBLIC_URL: _url, ...noUrl } = CLUSTER;
  assert.match(problemsOf(noUrl, 'worker').join('\n'), /needs KILN_PUBLIC_URL/);
  // A lone process may use any one of the services; Redis needs the shared store and objects.
  assert.deepEqual(problemsOf({ KILN_DATABASE_URL: CLUSTER.KILN_DATABASE_URL }, 'serve'), []);
  assert.deepEqual(problemsOf({ KILN_S3_BUCKET: 'images' }, 'serve'), []);
  assert.equal(problemsOf({ KILN_REDIS_URL: CLUSTER.KILN_REDIS_URL }, 'serve').length, 2);
  assert.match(problemsOf({ ...CLUSTER, KILN_REDIS_URL: 'http://x' }, 'api').join('\n'), /KILN_REDIS_URL: must be a redis/);
});

test('an unknown command prints the usage and exits 2; a refused combination exits 2 naming the problem', async () => {
  const unknown = await runToExit('launch', {});
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Usage: kiln <command>/);
  for (const command of ['serve', 'api', 'worker', 'keys', 'generate', 'batch', 'tasks']) assert.match(unknown.stderr, new RegExp(`\\n  ${command} `));
  const refused = await runToExit('api', {});
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /kiln api needs KILN_REDIS_URL/);
});

describe('kiln api and kiln worker against real services', { skip: (await serviceProblem('redis')) ?? (await serviceProblem('postgres')) }, () => {
  let s3: S3Server;
  let database: { url: string; drop(): Promise<void> };
  let dataDir: string;
  before(async () => {
    s3 = await startS3Server();
    database = await freshPostgresDatabase('roles');
    dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-roles-'));
  });
  after(async () => {
    await s3?.close();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const env = (): Record<string, string> => ({
    ...s3.env,
    KILN_DATABASE_URL: database.url,
    KILN_REDIS_URL: redisUrl(REDIS_DB.misc),
    KILN_REDIS_PREFIX: `kilntest-roles-${process.pid}`,
    KILN_PUBLIC_URL: 'http://127.0.0.1:1',
    KILN_DATA_DIR: dataDir,
  });

  test('unreachable PostgreSQL or Redis stops the start at once, naming the URL without its password', async () => {
    const pgPort = await closedPort();
    const noDatabase = await runToExit('worker', { ...env(), KILN_DATABASE_URL: `postgres://kiln:hunter2@127.0.0.1:${pgPort}/kiln` });
    assert.equal(noDatabase.code, 1);
    assert.match(noDatabase.stderr, new RegExp(`postgres://kiln:\\*\\*\\*@127\\.0\\.0\\.1:${pgPort}/kiln`));
    assert.doesNotMatch(noDatabase.stderr, /hunter2/);
    const redisPort = await closedPort();
    const noRedis = await runToExit('api', { ...env(), KILN_REDIS_URL: `redis://:hunter2@127.0.0.1:${redisPort}/0` });
    assert.equal(noRedis.code, 1);
    assert.match(noRedis.stderr, new RegExp(`Redis is not reachable at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${redisPort}/0`));
    assert.doesNotMatch(noRedis.stderr, /hunter2/);
    assert.ok(noRedis.ms < 20_000, `took ${noRedis.ms} ms`);
  });

  test('a worker serves /health and /metrics only, and exits 0 on SIGTERM', async () => {
    const worker = await ChildServer.start(dataDir, env(), 'worker');
    try {
      const health = (await (await fetch(`${worker.url}/health`)).json()) as Record<string, unknown>;
      assert.deepEqual(health, { status: 'ok', role: 'worker' });
      const metrics = await fetch(`${worker.url}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /kiln_images_total/);
      const v1 = await fetch(`${worker.url}/v1`, { method: 'POST', body: '[]' });
      assert.equal(v1.status, 404);
      assert.equal(((await v1.json()) as { errors: { code: string }[] }).errors[0]?.code, 'notFound');
    } finally {
      const exit = await worker.kill('SIGTERM');
      assert.equal(exit.code, 0);
    }
  });
});
