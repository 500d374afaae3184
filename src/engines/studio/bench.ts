/**
 * Speed figures for the studio renderer, in one process run (the machines are shared and noisy, so
 * only ratios taken within one run mean anything):
 *
 * - the bare sharp JPG encode of the rendered pixels (quality 95, 4:4:4, `sharp.concurrency(1)`),
 * - the render on one thread (the renderer called in this thread, not through the pool),
 * - the render through the 2-thread worker pool: one image on the idle pool (which splits it into
 *   two strips, one per worker), the same forced whole onto one worker, and two concurrent images
 *   (which the pool renders whole, one per worker: throughput against one whole render),
 *
 * for 2496×1664 and 4096×4096, as medians and ratios. Run it with
 * `node --import tsx src/engines/studio/bench.ts` (env `BENCH_RUNS`, default 12; `BENCH_PROMPTS=all`
 * also times a handful of other prompts, whose costs differ: rain, stars, water, fog).
 * `benchStudio()` returns the same figures for `npm run bench`.
 */
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { renderScene } from './renderer.ts';
import type { RenderJob } from './render-job.ts';
import { planScene } from './scene-plan.ts';
import { WorkerPool, type RenderOutput } from './worker-pool.ts';

const PROMPT = 'An expansive spring festival in a hillside town plaza with a dragon kite above tiled rooftops, lantern strands, distant terraces, drifting petals, golden late-afternoon sunlight, jade, coral, saffron and porcelain white';

const OTHER_PROMPTS: readonly string[] = [
  'a neon city skyline at night in the rain, reflections on the harbor, moody',
  'snowy alpine peaks above a still lake at sunrise, pine forest, mist, serene watercolor',
  'an orbital garden above a ringed planet among the stars, copper and teal, retro-futurist illustration',
  'a lighthouse on sea cliffs under a stormy overcast sky, boats, gulls',
  'A grand retrofuturist rail terminal carved into a vast glacier basin, vapor plumes, ribbed glass canopies, cyan, silver, cream and warm gold',
];

const SIZES = [[2496, 1664], [4096, 4096]] as const;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function job(prompt: string, width: number, height: number, seed: number): RenderJob {
  return { prompt, width, height, seed, taskSeed: seed, references: [], elements: [] };
}

function encode(pixels: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
}

/** Median milliseconds of encode and single-thread render, interleaved so that noise hits both alike. */
async function measure(prompt: string, width: number, height: number, runs: number): Promise<{ encode: number; render: number; plan: number }> {
  const pixels = renderScene(planScene(job(prompt, width, height, 7)));
  await encode(pixels, width, height); // warm-up
  const encodes: number[] = [];
  const renders: number[] = [];
  const plans: number[] = [];
  for (let i = 0; i < runs; i++) {
    let started = performance.now();
    await encode(pixels, width, height);
    encodes.push(performance.now() - started);
    started = performance.now();
    const plan = planScene(job(prompt, width, height, 100 + i));
    plans.push(performance.now() - started);
    renderScene(plan);
    renders.push(performance.now() - started);
  }
  return { encode: median(encodes), render: median(renders), plan: median(plans) };
}

/** Milliseconds and ratios, keyed by a readable label. */
export async function benchStudio(runs = 12, prompts: readonly string[] = [PROMPT]): Promise<Record<string, number>> {
  sharp.concurrency(1);
  const results: Record<string, number> = {};
  for (const [width, height] of SIZES) {
    for (const [p, prompt] of prompts.entries()) {
      const tag = p === 0 ? `${width}x${height}` : `${width}x${height} prompt ${p}`;
      const m = await measure(prompt, width, height, runs);
      results[`encode ${tag}`] = m.encode;
      results[`render ${tag}`] = m.render;
      results[`  of which plan ${tag}`] = m.plan;
      results[`ratio render/encode ${tag}`] = m.render / m.encode;
    }
  }
  const pool = new WorkerPool(2);
  try {
    const big = (seed: number): RenderJob => job(PROMPT, 2496, 1664, seed);
    // Warm-up: the workers' JIT needs a few renders of each kind (whole images and strips) before the times settle.
    for (let i = 0; i < 3; i++) {
      await Promise.all([pool.render(big(1 + i)), pool.render(big(4 + i))]);
      await pool.render(big(7 + i));
      await pool.render(big(7 + i), undefined, undefined, 1);
    }
    const splits: number[] = [];
    const wholes: number[] = [];
    const twos: number[] = [];
    const strips = (n: number, outputs: readonly RenderOutput[]): void => {
      if (outputs.some((output) => output.strips !== n)) throw new Error(`expected ${n} strips, got ${outputs.map((output) => output.strips).join(', ')}`);
    };
    for (let i = 0; i < Math.max(3, runs); i++) {
      let started = performance.now();
      strips(2, [await pool.render(big(10 + i))]);
      splits.push(performance.now() - started);
      started = performance.now();
      strips(1, [await pool.render(big(50 + i), undefined, undefined, 1)]);
      wholes.push(performance.now() - started);
      started = performance.now();
      strips(1, await Promise.all([pool.render(big(100 + i)), pool.render(big(200 + i))]));
      twos.push(performance.now() - started);
    }
    // One image as the pool serves it (split over both workers when they are free).
    results['pool 1x 2496x1664'] = median(splits);
    results['pool split 2496x1664'] = median(splits);
    results['pool whole 2496x1664'] = median(wholes);
    results['ratio pool whole/split 2496x1664'] = median(wholes) / median(splits);
    // Two images asked for together render whole, one per worker: throughput against one whole render.
    results['pool 2x 2496x1664'] = median(twos);
    results['pool throughput ratio'] = (2 * median(wholes)) / median(twos);
  } finally {
    await pool.close();
  }
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const runs = Number(process.env.BENCH_RUNS ?? 12);
  const prompts = process.env.BENCH_PROMPTS === 'all' ? [PROMPT, ...OTHER_PROMPTS] : [PROMPT];
  const results = await benchStudio(runs, prompts);
  console.log(`studio bench, medians of ${runs} runs (encode: sharp q95 4:4:4, concurrency 1; render: one thread, plan included)`);
  for (const [label, value] of Object.entries(results)) console.log(`${label.padEnd(44)} ${label.includes('ratio') ? `${value.toFixed(2)}×` : `${value.toFixed(1)} ms`}`);
}
