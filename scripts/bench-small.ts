/**
 * The small-task part of `npm run bench`: `kiln:studio@1` 256² JPG tasks, 64 in flight over REST,
 * against Kiln with the studio engine, Kiln with the fixed test engine (the platform's own cost)
 * and the bare fastify + better-sqlite3 ceiling, interleaved in one run, each server a child
 * process. Also answers statements, commits and main-thread time per task.
 */
import { randomUUID } from 'node:crypto';
import { closedLoop, postTasks, startChild, type BenchChild, type ChildStats } from './bench-load.ts';

export const SMALL_TASK = { taskType: 'imageInference', model: 'kiln:studio@1', width: 256, height: 256, outputFormat: 'JPG' } as const;
const PROMPT = 'a lighthouse on a cliff at dusk, warm light, calm sea';

export interface SmallTaskFigures {
  readonly ceiling: number;
  readonly studio: number;
  readonly fixed: number;
  /** Per task with the studio engine: main-thread busy ms, process CPU ms, SQL statements, commits. */
  readonly studioPerTask: PerTask;
  readonly fixedPerTask: PerTask;
  readonly failed: number;
}

export interface PerTask {
  readonly mainThreadMs: number;
  readonly cpuMs: number;
  readonly statements: number;
  readonly commits: number;
}

const smallTask = (): Record<string, unknown> => ({ ...SMALL_TASK, taskUUID: randomUUID(), positivePrompt: PROMPT });

function perTask(before: ChildStats | undefined, after: ChildStats | undefined, tasks: number): PerTask {
  if (!before || !after || tasks === 0) return { mainThreadMs: NaN, cpuMs: NaN, statements: NaN, commits: NaN };
  return {
    mainThreadMs: (after.mainThreadActiveMs - before.mainThreadActiveMs) / tasks,
    cpuMs: (after.cpuMs - before.cpuMs) / tasks,
    statements: (after.statements - before.statements) / tasks,
    commits: (after.commits - before.commits) / tasks,
  };
}

/** Runs `rounds` interleaved rounds of `seconds` each per server; answers the median of each figure. */
export async function measureSmallTasks(options: { rounds?: number; seconds?: number; inFlight?: number; env?: Record<string, string> } = {}): Promise<SmallTaskFigures> {
  const rounds = options.rounds ?? 3;
  const seconds = options.seconds ?? 4;
  const inFlight = options.inFlight ?? 64;
  const servers: BenchChild[] = [];
  try {
    const ceiling = await startChild('scripts/ceiling-server.ts');
    servers.push(ceiling);
    const studio = await startChild('scripts/bench-server.ts', [], options.env ?? {});
    servers.push(studio);
    const fixed = await startChild('scripts/bench-server.ts', ['--engine', 'fixed'], options.env ?? {});
    servers.push(fixed);
    const results = { ceiling: [] as number[], studio: [] as number[], fixed: [] as number[] };
    const per = { studio: [] as PerTask[], fixed: [] as PerTask[] };
    let failed = 0;
    for (let round = 0; round < rounds; round++) {
      for (const [name, server] of [['ceiling', ceiling], ['studio', studio], ['fixed', fixed]] as const) {
        const before = await server.stats();
        const run = await closedLoop(() => postTasks(server.url, [smallTask()]), { inFlight, seconds, warmSeconds: 1 });
        const after = await server.stats();
        results[name].push(run.perSecond);
        failed += run.failed;
        // The warm-up second's tasks are in the counters too: divide by everything that finished.
        if (name !== 'ceiling') per[name].push(perTask(before, after, run.done + run.warmDone));
      }
    }
    const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1] ?? NaN;
    const medianPer = (list: PerTask[]): PerTask => ({
      mainThreadMs: median(list.map((p) => p.mainThreadMs)),
      cpuMs: median(list.map((p) => p.cpuMs)),
      statements: median(list.map((p) => p.statements)),
      commits: median(list.map((p) => p.commits)),
    });
    return {
      ceiling: median(results.ceiling),
      studio: median(results.studio),
      fixed: median(results.fixed),
      studioPerTask: medianPer(per.studio),
      fixedPerTask: medianPer(per.fixed),
      failed,
    };
  } finally {
    for (const server of servers) await server.close();
  }
}
