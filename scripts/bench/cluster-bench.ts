/**
 * The scale-out figures of `npm run bench`, measured in one run on this machine:
 * - a 1024×1024 task end to end through a cluster (2 api + 2 workers on Redis, PostgreSQL and
 *   s3rver, all on loopback) against the same task on one `kiln serve` child process;
 * - the event bus's delivery latency from another process to this one (p50, p99).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisTaskEvents } from '../../src/events/redis-task-events.ts';
import { ChildServer } from '../../test/helpers/child-server.ts';
import { startCluster } from '../../test/helpers/cluster.ts';
import { post } from '../../test/helpers/kiln-server.ts';
import { REDIS_DB, redisUrl, serviceProblem, uniquePrefix } from '../../test/helpers/services.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ClusterBench {
  /** Rows of the BENCHMARKS.md table: measurement, median, ratio. */
  readonly rows: [string, string, string][];
  /** Why it did not run, when Redis or PostgreSQL is missing. */
  readonly skipped?: string;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

const task = (): Record<string, unknown> => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a lighthouse on a jade sea at dusk, teal and brass',
  width: 1024,
  height: 1024,
});

/**
 * Requests not counted, per worker process: the studio's worker threads reach their speed after a
 * few renders each (the first 1024² render takes ~10× a warm one). The cluster's two workers
 * share its requests, so it gets twice as many: each process is as warm as the single one.
 */
const WARM_UP = 8;

async function timeRequests(servers: readonly { url: string }[], runs: number, workers: number): Promise<number[]> {
  const times: number[] = [];
  const warmUp = WARM_UP * workers;
  for (let i = -warmUp; i < runs; i++) {
    const server = servers[(i + warmUp) % servers.length]!;
    const started = performance.now();
    const response = await post(server, [task()]);
    if (response.status !== 200) throw new Error(`status ${response.status}: ${JSON.stringify(response.body)}`);
    // Warm-up requests are not counted.
    if (i >= 0) times.push(performance.now() - started);
  }
  return times;
}

async function eventLatency(count: number): Promise<number[]> {
  const url = redisUrl(REDIS_DB.misc);
  const prefix = uniquePrefix('bench-events');
  const taskUUID = randomUUID();
  const bus = new RedisTaskEvents({ redisUrl: url, prefix });
  const latencies: number[] = [];
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const stop = await bus.watch(taskUUID, (event) => {
    if (event.type === 'result') latencies.push(performance.timeOrigin + performance.now() - Number(event.item.sentAt));
    else if (event.type === 'end') ended();
  });
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/event-emitter.ts', url, prefix, taskUUID, String(count)], { cwd: ROOT, stdio: 'inherit' });
  await Promise.race([done, new Promise((_, reject) => child.once('exit', (code) => code !== 0 && reject(new Error(`emitter exited ${code}`))))]);
  stop();
  await bus.close();
  return latencies;
}

export async function benchCluster(runs: number): Promise<ClusterBench> {
  const skipped = (await serviceProblem('redis')) ?? (await serviceProblem('postgres'));
  if (skipped) return { rows: [], skipped };
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-serve-'));
  // The same studio threads per process as the cluster's workers, so the comparison is fair, and
  // the start-up warm-up on (the default; the test helpers turn it off to save time).
  const env = { KILN_STUDIO_THREADS: '2', KILN_WARMUP: 'true' };
  const single = await ChildServer.start(dataDir, env);
  let serveTimes: number[];
  try {
    serveTimes = await timeRequests([single], runs, 1);
  } finally {
    await single.kill('SIGTERM');
    await rm(dataDir, { recursive: true, force: true });
  }
  const cluster = await startCluster({ env: { ...env, KILN_QUEUE_LOCK_SECONDS: '30' } });
  let clusterTimes: number[];
  try {
    clusterTimes = await timeRequests(cluster.apis, runs, cluster.workers.length);
  } finally {
    await cluster.close();
  }
  const latencies = await eventLatency(1000);
  const serve = median(serveTimes);
  const scaled = median(clusterTimes);
  return {
    rows: [
      ['1024×1024 sync REST task on one `kiln serve` process', `${serve.toFixed(1)} ms`, '1.00× (reference)'],
      [
        '1024×1024 sync REST task through the cluster (2 api + 2 workers, Redis, PostgreSQL, s3rver)',
        `${scaled.toFixed(1)} ms`,
        `${(scaled / serve).toFixed(2)}× one process (target ≤ 1.3)`,
      ],
      [
        'event bus, worker process → API process (Redis pub/sub, 1000 events)',
        `p50 ${percentile(latencies, 50).toFixed(2)} ms`,
        `p99 ${percentile(latencies, 99).toFixed(2)} ms`,
      ],
    ],
  };
}

// Run alone: `node --import tsx scripts/bench/cluster-bench.ts`.
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const result = await benchCluster(Number(process.env.BENCH_RUNS ?? 12));
  console.log(result.skipped ?? result.rows.map((row) => row.join(' | ')).join('\n'));
}
