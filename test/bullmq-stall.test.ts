/**
 * BullmqQueue recovery: a worker process killed with SIGKILL while it holds a job (the job's lock
 * expires, the stalled-job check hands it to another worker), and a Redis restart (producers
 * fail fast meanwhile, workers resume, nothing is lost). The restart test runs its own
 * `redis-server` on a free loopback port, so the shared Redis is never stopped.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { BullmqQueue } from '../src/queue/bullmq-queue.ts';
import { QueueUnavailableError } from '../src/queue/task-queue.ts';
import { deferred } from '../src/shared/deferred.ts';
import { REDIS_DB, redisUrl, serviceProblem, uniquePrefix, closedPort, deleteRedisKeys, privateRedisProblem } from './helpers/services.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

// Run under tsx from its source, also when this file runs compiled.
const ROOT = REPO_ROOT;
const STALL_WORKER = path.join(ROOT, 'test', 'helpers', 'bullmq-stall-worker.ts');
const redisProblem = await serviceProblem('redis');
const redisServerMissing = privateRedisProblem();

describe('BullmqQueue: a worker killed while holding a job', { skip: redisProblem }, () => {
  const url = redisUrl(REDIS_DB.queue);
  const prefix = uniquePrefix('stall');
  const name = uniquePrefix('q');
  const queues: BullmqQueue[] = [];
  let child: ChildProcess | undefined;
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(queues.map((queue) => queue.close()));
    await deleteRedisKeys(url, `${prefix}:*`);
  });

  it('another worker runs the job to completion once the dead worker’s lock expires', async () => {
    const producer = new BullmqQueue({ redisUrl: url, name, prefix });
    queues.push(producer);
    const id = randomUUID();
    await producer.enqueue({ id });

    const spawned = spawn(process.execPath, ['--import', 'tsx', STALL_WORKER], {
      cwd: ROOT,
      env: { ...process.env, KILN_STALL_REDIS_URL: url, KILN_STALL_QUEUE: name, KILN_STALL_PREFIX: prefix, KILN_STALL_LOCK_MS: '2000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = spawned;
    const exited = new Promise<NodeJS.Signals | null>((resolve) => spawned.once('exit', (_code, signal) => resolve(signal)));
    let stderr = '';
    spawned.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const started = deferred();
    let stdout = '';
    spawned.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes(`started ${id}`)) started.resolve();
    });
    await within(started.promise, 30_000, () => `the child worker to take the job (stderr: ${stderr})`);
    assert.deepEqual(await producer.counts(), { waiting: 0, running: 1 });

    spawned.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const killedAt = Date.now();

    const survivor = new BullmqQueue({ redisUrl: url, name, prefix, lockMs: 2_000, stalledIntervalMs: 1_000 });
    queues.push(survivor);
    const ran = deferred<string>();
    survivor.process(async (job) => ran.resolve(job.id), { concurrency: 1 });
    assert.equal(await within(ran.promise, 15_000, () => 'the stalled job to run again'), id);
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed >= 1_000, `taken over after ${elapsed} ms, before the lock could expire`);
    await untilCounts(producer, 0, 0);
  });
});

describe('BullmqQueue: a run whose job lock is lost', { skip: redisProblem }, () => {
  const url = redisUrl(REDIS_DB.queue);
  const prefix = uniquePrefix('lock');
  const name = uniquePrefix('q');
  let queue: BullmqQueue | undefined;
  after(async () => {
    await queue?.close();
    await deleteRedisKeys(url, `${prefix}:*`);
  });

  it('is aborted, and the job runs again', async () => {
    queue = new BullmqQueue({ redisUrl: url, name, prefix, lockMs: 2_000, stalledIntervalMs: 1_000, retryDelayMs: 100 });
    const id = randomUUID();
    const firstRun = deferred<AbortSignal>();
    const secondRun = deferred();
    let runs = 0;
    queue.process(async (_job, signal) => {
      runs += 1;
      if (runs > 1) return secondRun.resolve();
      firstRun.resolve(signal);
      await new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    }, { concurrency: 1 });
    await queue.enqueue({ id });
    const signal = await within(firstRun.promise, 10_000, () => 'the first run');
    // What an expired lock looks like to the worker that held it: the renewal finds no lock.
    const client = new Redis(url);
    try {
      assert.equal(await client.del(`${prefix}:${name}:${id}:lock`), 1);
    } finally {
      client.disconnect();
    }
    await until(() => signal.aborted, 'the run to be aborted');
    await within(secondRun.promise, 15_000, () => 'the job to run again');
  });
});

describe('BullmqQueue across a Redis restart', { skip: redisServerMissing }, () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'kiln-redis-'));
  let server: ChildProcess | undefined;
  let queue: BullmqQueue | undefined;
  after(async () => {
    await queue?.close();
    if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('producers fail fast while Redis is down; the worker resumes and nothing waiting is lost', async () => {
    const port = await closedPort();
    server = await startRedis(port, dataDir);
    queue = new BullmqQueue({ redisUrl: `redis://127.0.0.1:${port}/0`, name: 'kiln-restart', retryDelayMs: 100, lockMs: 10_000 });
    const finished: string[] = [];
    const slowStarted = deferred();
    const releaseSlow = deferred();
    const [slow, waiting, afterwards] = [randomUUID(), randomUUID(), randomUUID()];
    queue.process(async (job) => {
      if (job.id === slow) {
        slowStarted.resolve();
        await releaseSlow.promise;
      }
      finished.push(job.id);
    }, { concurrency: 1 });
    await queue.enqueue({ id: slow });
    await queue.enqueue({ id: waiting });
    await within(slowStarted.promise, 10_000, () => 'the slow job to start');

    await stopRedis(server);
    const begun = Date.now();
    await assert.rejects(queue.enqueue({ id: randomUUID() }), QueueUnavailableError);
    await assert.rejects(queue.counts(), QueueUnavailableError);
    assert.ok(Date.now() - begun < 8_000);
    // The slow job finishes during the outage; its completion is sent once Redis is back.
    releaseSlow.resolve();
    await sleep(500);

    server = await startRedis(port, dataDir);
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await queue.enqueue({ id: afterwards });
        break;
      } catch (error) {
        if (!(error instanceof QueueUnavailableError) || Date.now() > deadline) throw error;
        await sleep(200);
      }
    }
    await until(() => [slow, waiting, afterwards].every((id) => finished.includes(id)), 'every job to finish', 20_000);
    await untilCounts(queue, 0, 0);
  });
});

async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'],
    { stdio: 'ignore' },
  );
  await until(async () => {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  }, 'redis-server to answer');
  return server;
}

async function stopRedis(server: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  server.kill('SIGTERM');
  await exited;
}

async function untilCounts(queue: BullmqQueue, waiting: number, running: number): Promise<void> {
  let last: unknown;
  await until(async () => {
    const counts = await queue.counts();
    last = counts;
    return counts.waiting === waiting && counts.running === running;
  }, 'counts').catch(() => assert.deepEqual(last, { waiting, running }));
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

