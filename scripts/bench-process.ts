/**
 * The parts of `npm run bench` that need a fresh `kiln serve` child or a filled store: peak
 * memory of one 20 × 4096² task, the first requests after a start against warm ones, and
 * throughput on a store holding 40k images against an empty one.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openTaskStore } from '../src/store/open-task-store.ts';
import { TEST_KEY } from '../test/helpers/kiln-server.ts';
import { closedLoop, postTasks, residentMb, startChild } from './bench-load.ts';
import { SMALL_TASK } from './bench-small.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const PROMPT = 'An expansive spring festival in a hillside town plaza, an enormous dragon-shaped kite above tiled rooftops, golden late-afternoon sunlight';

/**
 * The production build of the sources as they are now (`npm run build` into a scratch folder in
 * the repository, where Node finds node_modules), made once per bench run: a fresh server is
 * measured as `npm start` runs it, with plain node and no TypeScript loader.
 */
let built: Promise<string> | undefined;
function productionBuild(): Promise<string> {
  built ??= (async () => {
    const outDir = await mkdtemp(path.join(ROOT, '.kiln-test-bench-build-'));
    process.once('exit', () => rmSync(outDir, { recursive: true, force: true }));
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build.ts', '--outDir', outDir], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    if (result.status !== 0) throw new Error(`the production build failed (${result.status ?? result.signal})`);
    return path.join(outDir, 'main.js');
  })();
  return built;
}

async function withServe<T>(env: Record<string, string>, body: (server: Awaited<ReturnType<typeof startChild>>) => Promise<T>): Promise<T> {
  const dataDir = env.KILN_DATA_DIR ?? (await mkdtemp(path.join(tmpdir(), 'kiln-bench-serve-')));
  const server = await startChild(await productionBuild(), ['serve'], { KILN_LOG_LEVEL: 'info', KILN_DATA_DIR: dataDir, ...env });
  try {
    return await body(server);
  } finally {
    await server.close();
    if (!env.KILN_DATA_DIR) await rm(dataDir, { recursive: true, force: true });
  }
}

/** Peak resident memory (VmHWM) of a fresh `kiln serve` running one task of `count` 4096² JPG images, sampled from /proc. */
export async function measureMemory(count = 20): Promise<{ peakMb: number; idleMb: number; seconds: number; images: number; samplesMaxRssMb: number }> {
  return withServe({}, async (server) => {
    const pid = server.child.pid!;
    // One small request first, so the idle figure includes a warm server.
    await postTasks(server.url, [{ ...SMALL_TASK, taskUUID: randomUUID(), positivePrompt: PROMPT }]);
    const idle = await residentMb(pid);
    let maxRss = 0;
    const sampler = setInterval(() => {
      void residentMb(pid).then((m) => (maxRss = Math.max(maxRss, m.rss)), () => undefined);
    }, 50);
    const started = performance.now();
    const response = await postTasks(server.url, [
      { taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: PROMPT, width: 4096, height: 4096, numberResults: count, outputFormat: 'JPG', outputQuality: 95 },
    ]);
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    if (response.status !== 200) throw new Error(`memory task: status ${response.status} ${JSON.stringify(response.body).slice(0, 300)}`);
    const images = (response.body as { data?: unknown[] }).data?.length ?? 0;
    const peak = await residentMb(pid);
    return { peakMb: peak.peak, idleMb: idle.rss, seconds, images, samplesMaxRssMb: maxRss };
  });
}

/** The first `first` 2496×1664 JPG requests to a fresh `kiln serve` (sent once it listens), then `warm` more: their times and the warm median. */
/**
 * The first `first` requests after a start (seeds 1…first) against the same requests made warm:
 * after `warm` other requests, each seed again `repeats` times. A scene's cost depends on its
 * seed (±30 % here), so each first request is compared with the warm median of its own seed.
 */
export async function measureWarmStart(first = 3, warm = 6, repeats = 3): Promise<{ startMs: number; firstMs: number[]; warmMs: number[]; warmMedianMs: number }> {
  return withServe({}, async (server) => {
    const time = async (seed: number): Promise<number> => {
      const response = await postTasks(server.url, [
        { taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: PROMPT, width: 2496, height: 1664, seed, outputFormat: 'JPG', outputQuality: 95 },
      ]);
      if (response.status !== 200) throw new Error(`warm start: status ${response.status}`);
      return response.ms;
    };
    const firstMs: number[] = [];
    for (let i = 1; i <= first; i++) firstMs.push(await time(i));
    const others: number[] = [];
    for (let i = 0; i < warm; i++) others.push(await time(first + 1 + i));
    const again: number[][] = Array.from({ length: first }, () => []);
    for (let round = 0; round < repeats; round++) for (let i = 0; i < first; i++) again[i]!.push(await time(i + 1));
    return { startMs: server.startMs, firstMs, warmMs: again.map(median), warmMedianMs: median([...others, ...again.flat()]) };
  });
}

/** Fills a SQLite store in `dataDir` through the store with `count` finished tasks of one URL image each. */
async function prefill(dataDir: string, count: number): Promise<void> {
  const store = await openTaskStore({ sqliteFile: path.join(dataDir, 'kiln.sqlite') });
  const now = Date.now();
  const day = 24 * 3600_000;
  const one = async (i: number): Promise<void> => {
    const taskUUID = randomUUID();
    const imageUUID = randomUUID();
    const request = JSON.stringify({ ...SMALL_TASK, taskUUID, positivePrompt: PROMPT, outputType: 'URL' });
    await store.insertTask(
      { taskUUID, apiKeyId: 'prefill', taskType: 'imageInference', model: SMALL_TASK.model, engine: 'studio', request, status: 'queued', imageCount: 1, createdAt: now - i, updatedAt: now, finishedAt: null, expiresAt: null },
      [{ taskUUID, index: 0, seed: i + 1, seriesIndex: null, status: 'pending', imageUUID: null, error: null, cost: null, nsfw: null, finishedAt: null }],
    );
    await store.insertImage({ imageUUID, kind: 'generated', taskUUID, apiKeyId: 'prefill', format: 'jpg', width: 256, height: 256, bytes: 9000, objectKey: `${imageUUID}.jpg`, createdAt: now, expiresAt: now + day, servable: true });
    await store.settleGeneration(taskUUID, 0, { status: 'success', imageUUID, cost: 0, seed: i + 1, finishedAt: now }, []);
    await store.setTaskStatus(taskUUID, 'done', now, now + day);
  };
  const batch = 64;
  for (let i = 0; i < count; i += batch) await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, j) => one(i + j)));
  await store.close();
}

/**
 * Throughput of small tasks (fixed test engine, so the store's share is as large as it gets) on
 * a store prefilled with `images` finished tasks against an empty one, interleaved.
 */
export async function measureFlatStore(images = 40_000, rounds = 3, seconds = 4): Promise<{ empty: number; full: number; prefillSeconds: number }> {
  const fullDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-full-'));
  const emptyDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-empty-'));
  const started = performance.now();
  await prefill(fullDir, images);
  const prefillSeconds = (performance.now() - started) / 1000;
  const servers = [
    await startChild('scripts/bench-server.ts', ['--engine', 'fixed'], { KILN_DATA_DIR: emptyDir }),
    await startChild('scripts/bench-server.ts', ['--engine', 'fixed'], { KILN_DATA_DIR: fullDir }),
  ];
  try {
    const results: number[][] = [[], []];
    for (let round = 0; round < rounds; round++) {
      for (const [i, server] of servers.entries()) {
        const run = await closedLoop(() => postTasks(server.url, [{ ...SMALL_TASK, taskUUID: randomUUID(), positivePrompt: PROMPT }]), { inFlight: 64, seconds, warmSeconds: 1 });
        results[i]!.push(run.perSecond);
      }
    }
    return { empty: median(results[0]!), full: median(results[1]!), prefillSeconds };
  } finally {
    for (const server of servers) await server.close();
    await rm(fullDir, { recursive: true, force: true });
    await rm(emptyDir, { recursive: true, force: true });
  }
}

export { TEST_KEY };
