/**
 * The scale-out figures of `npm run bench`, measured in one run on this machine:
 * - a 1024×1024 task end to end through a cluster (2 api + 2 workers on Redis, PostgreSQL and
 *   s3rver, all on loopback) against the same task on one `kiln serve` child process, both
 *   running throughout and timed in alternating blocks, with the CPU each used per task;
 * - the event bus's delivery latency from another process to this one (p50, p99).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisTaskEvents } from '../../src/events/redis-task-events.ts';
import { ChildServer } from '../../test/helpers/child-server.ts';
import { ensureTestBuild } from '../../test/helpers/compiled-kiln.ts';
import { startCluster } from '../../test/helpers/cluster.ts';
import { post } from '../../test/helpers/kiln-server.ts';
import { REDIS_DB, redisUrl, serviceProblem, uniquePrefix } from '../../test/helpers/services.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// The AWS SDK's notice about Node < 22, printed by the S3 client that makes the bucket (as in scripts/cluster.ts).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

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

/** CPU milliseconds (user + system, all threads) used so far by each group of processes on the machine, from /proc; empty where there is none. */
type CpuSample = Map<string, number>;

let clockTicks: number | undefined;

function sampleCpu(groupOf: (pid: number, command: string) => string): CpuSample {
  const sample: CpuSample = new Map();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return sample;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // it ended meanwhile
    }
    // "pid (command) state ppid …": utime and stime are the 14th and 15th fields.
    const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
    const group = groupOf(Number(pid), command);
    sample.set(group, (sample.get(group) ?? 0) + ms);
  }
  return sample;
}

/** Names the machine's processes: Kiln's own by pid, the services and the kernel by command. */
function grouping(kiln: ReadonlyMap<number, string>): (pid: number, command: string) => string {
  return (pid, command) => {
    const own = kiln.get(pid);
    if (own) return own;
    if (pid === process.pid) return 'bench process (client, s3rver)';
    if (command.startsWith('postgres')) return 'PostgreSQL';
    if (command.startsWith('redis-server')) return 'Redis';
    if (command.startsWith('kworker') || command.startsWith('ksoftirqd')) return 'kernel workers';
    return 'other';
  };
}

interface Timed {
  readonly times: number[];
  /** CPU milliseconds per request, by group of processes. */
  readonly cpuPerTask: Map<string, number>;
}

/** One way of serving the task: one `kiln serve`, or the cluster's API processes in turn. */
interface Side {
  readonly servers: readonly { url: string }[];
  /** Worker processes (the warm-up gives each as many requests as the single process gets). */
  readonly workers: number;
  readonly groupOf: (pid: number, command: string) => string;
}

/** Requests per block; a block's first request is not timed (see `timeSides`). */
const BLOCK = 8;

async function postTask(server: { url: string }): Promise<number> {
  const started = performance.now();
  const response = await post(server, [task()]);
  if (response.status !== 200) throw new Error(`status ${response.status}: ${JSON.stringify(response.body)}`);
  return performance.now() - started;
}

/**
 * Times the sides in alternating blocks of back-to-back requests, so that the machine's drift
 * (it is shared and noisy) falls on every side alike, while within a block each task still
 * overlaps the tail of the one before it (its status, charge, the queue's completion), as it
 * does under steady use. A block's first request starts on a quiet side, so it is not timed;
 * a pause after each block lets its last tail end before the CPU is read. `blocks` blocks per side.
 */
async function timeSides(sides: readonly Side[], blocks: number): Promise<Timed[]> {
  for (const side of sides) for (let i = 0; i < WARM_UP * side.workers; i++) await postTask(side.servers[i % side.servers.length]!);
  const out = sides.map(() => ({ times: [] as number[], cpu: new Map<string, number>(), requests: 0 }));
  for (let block = 0; block < blocks; block++) {
    // Every other block the other side goes first.
    const order = sides.map((_, i) => i);
    if (block % 2 === 1) order.reverse();
    for (const s of order) {
      const side = sides[s]!;
      const before = sampleCpu(side.groupOf);
      for (let i = 0; i < BLOCK; i++) {
        const ms = await postTask(side.servers[(block * BLOCK + i) % side.servers.length]!);
        if (i > 0) out[s]!.times.push(ms);
      }
      await new Promise((resolve) => setTimeout(resolve, 150));
      const after = sampleCpu(side.groupOf);
      for (const [group, ms] of after) out[s]!.cpu.set(group, (out[s]!.cpu.get(group) ?? 0) + ms - (before.get(group) ?? 0));
      out[s]!.requests += BLOCK;
    }
  }
  return out.map(({ times, cpu, requests }) => ({
    times,
    cpuPerTask: new Map([...cpu].map(([group, ms]) => [group, ms / requests] as const).filter(([, ms]) => ms > 0)),
  }));
}

/** "12.3 ms (a 5.0, b 4.1, …)": the total and the groups that used at least 0.3 ms. */
function describeCpu(cpu: ReadonlyMap<string, number>): { total: number; text: string } {
  const total = [...cpu.values()].reduce((sum, ms) => sum + ms, 0);
  const parts = [...cpu].filter(([, ms]) => ms >= 0.3).sort((a, b) => b[1] - a[1]);
  return { total, text: parts.map(([group, ms]) => `${group} ${ms.toFixed(1)}`).join(', ') };
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
  // Both sides start from the compiled build, as in production (and always the same way).
  ensureTestBuild();
  const skipped = (await serviceProblem('redis')) ?? (await serviceProblem('postgres'));
  if (skipped) return { rows: [], skipped };
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-serve-'));
  // The same studio threads per process as the cluster's workers, so the comparison is fair, and
  // the start-up warm-up on (the default; the test helpers turn it off to save time). Both run
  // for the whole measurement; the one not being timed sits idle.
  const env = { KILN_STUDIO_THREADS: '2', KILN_WARMUP: 'true' };
  const single = await ChildServer.start(dataDir, env);
  let serveTimes: Timed;
  let clusterTimes: Timed;
  try {
    const cluster = await startCluster({ env: { ...env, KILN_QUEUE_LOCK_SECONDS: '30' } });
    try {
      const roles = new Map<number, string>([...cluster.apis.map((api) => [api.child.pid!, 'api processes'] as const), ...cluster.workers.map((worker) => [worker.child.pid!, 'worker processes'] as const)]);
      [serveTimes, clusterTimes] = (await timeSides(
        [
          { servers: [single], workers: 1, groupOf: grouping(new Map([[single.child.pid!, '`kiln serve`']])) },
          { servers: cluster.apis, workers: cluster.workers.length, groupOf: grouping(roles) },
        ],
        Math.max(6, Math.ceil(runs / (BLOCK - 1))),
      )) as [Timed, Timed];
    } finally {
      await cluster.close();
    }
  } finally {
    await single.kill('SIGTERM');
    await rm(dataDir, { recursive: true, force: true });
  }
  const latencies = await eventLatency(1000);
  const serve = median(serveTimes.times);
  const scaled = median(clusterTimes.times);
  const serveCpu = describeCpu(serveTimes.cpuPerTask);
  const clusterCpu = describeCpu(clusterTimes.cpuPerTask);
  const cpuRows: [string, string, string][] =
    serveCpu.total > 0 && clusterCpu.total > 0
      ? [
          ['CPU per task, every process on the machine, while one `kiln serve` runs the tasks above', `${serveCpu.total.toFixed(1)} ms`, `1.00×: ${serveCpu.text}`],
          ['same while the cluster runs them', `${clusterCpu.total.toFixed(1)} ms`, `${(clusterCpu.total / serveCpu.total).toFixed(2)}×: ${clusterCpu.text}`],
        ]
      : [];
  return {
    rows: [
      ['1024×1024 sync REST task on one `kiln serve` process', `${serve.toFixed(1)} ms`, '1.00× (reference)'],
      [
        '1024×1024 sync REST task through the cluster (2 api + 2 workers, Redis, PostgreSQL, s3rver)',
        `${scaled.toFixed(1)} ms`,
        `${(scaled / serve).toFixed(2)}× one process (target ≤ 1.3)`,
      ],
      ...cpuRows,
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
