/**
 * `npm run bench`: the speed targets of the issues, measured in one process run on this
 * machine, as medians and ratios. Prints a table and writes BENCHMARKS.md.
 *
 * Loopback only: the server under test is started here on 127.0.0.1.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import sharp from 'sharp';
import { createStudioEngine } from '../src/engines/studio/studio-engine.ts';
import type { GenerateCall, RawImage } from '../src/engines/spec/image-engine.ts';
import { post, startTestServer } from '../test/helpers/kiln-server.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 12);
const PROMPT =
  'An expansive spring festival in a hillside town plaza, an enormous dragon-shaped kite above tiled rooftops, golden late-afternoon sunlight, jade, coral, saffron and porcelain white';

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function timed(runs: number, job: (i: number) => Promise<unknown>): Promise<number> {
  await job(-1); // warm-up, not counted
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await job(i);
    times.push(performance.now() - start);
  }
  return median(times);
}

function call(width: number, height: number, seed: number): GenerateCall {
  return {
    model: 'klingai:kling-image@o3',
    prompt: PROMPT,
    width,
    height,
    images: [{ index: 0, seed }],
    taskSeed: seed,
    referenceImages: [],
    elements: [],
    output: { format: 'jpg', quality: 95 },
    options: {},
    signal: new AbortController().signal,
    checkpoint: { load: async () => undefined, save: async () => {} },
    includeCost: false,
  };
}

async function render(engine: ReturnType<typeof createStudioEngine>, width: number, height: number, seed: number): Promise<RawImage> {
  const result = await engine.generate(call(width, height, seed));
  const pixels = result.images[0]?.pixels;
  if (!pixels) throw new Error('studio returned no pixels');
  return pixels;
}

const encodeJpg = (image: RawImage) =>
  sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } })
    .jpeg({ quality: 95, chromaSubsampling: '4:4:4' })
    .toBuffer();

async function main(): Promise<void> {
  const rows: [string, string, string][] = [];
  const engine = createStudioEngine({ threads: 2 });
  try {
    for (const [width, height] of [
      [2496, 1664],
      [4096, 4096],
    ] as const) {
      const pixels = await render(engine, width, height, 7);
      const encode = await timed(RUNS, () => encodeJpg(pixels));
      const renderMs = await timed(RUNS, (i) => render(engine, width, height, 100 + i));
      rows.push([`${width}×${height} bare sharp JPG encode (q95)`, `${encode.toFixed(1)} ms`, '1.00× (reference)']);
      rows.push([`${width}×${height} studio render alone`, `${renderMs.toFixed(1)} ms`, `${(renderMs / encode).toFixed(2)}× encode (target ≤ 1.5)`]);
      if (width === 2496) {
        const server = await startTestServer({ KILN_LOG_LEVEL: 'warn' });
        try {
          const e2e = await timed(RUNS, async () => {
            const response = await post(server, [
              { taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: PROMPT, width, height },
            ]);
            if (response.status !== 200) throw new Error(`status ${response.status}`);
          });
          rows.push([`${width}×${height} one REST request end to end (JPG, URL)`, `${e2e.toFixed(1)} ms`, `${(e2e / encode).toFixed(2)}× encode (target ≤ 2.5)`]);
          const plain = { taskType: 'imageInference', model: 'klingai:kling-image@o3', positivePrompt: PROMPT, width: 1024, height: 1024 };
          await post(server, [{ ...plain, taskUUID: randomUUID(), safety: { mode: 'fast' } }]); // loads the classifier
          const without = await timed(RUNS, () => post(server, [{ ...plain, taskUUID: randomUUID() }]));
          const withCheck = await timed(RUNS, () => post(server, [{ ...plain, taskUUID: randomUUID(), safety: { mode: 'fast' } }]));
          rows.push(['1024×1024 REST request without safety check', `${without.toFixed(1)} ms`, '']);
          rows.push(['1024×1024 REST request with safety.mode fast', `${withCheck.toFixed(1)} ms`, `+${(withCheck - without).toFixed(1)} ms per checked image (target ≤ 80)`]);
        } finally {
          await server.close();
        }
      }
    }
    const one = await timed(RUNS, (i) => render(engine, 2496, 1664, 300 + i));
    const two = await timed(RUNS, (i) => Promise.all([render(engine, 2496, 1664, 400 + i), render(engine, 2496, 1664, 500 + i)]));
    rows.push(['2496×1664 one render', `${one.toFixed(1)} ms`, '']);
    rows.push(['2496×1664 two concurrent renders', `${two.toFixed(1)} ms`, `throughput ${((2 * one) / two).toFixed(2)}× one (target ≥ 1.7)`]);
  } finally {
    await engine.close();
  }

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const machine = `${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`;
  const table = ['| measurement | median | ratio |', '| --- | --- | --- |', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  console.log(`${machine}\n${table}`);
  const doc = `# Benchmarks

Produced by \`npm run bench\` (medians of ${RUNS} runs after one warm-up, all in one process run;
ratios are taken within that run, because the machines are shared and noisy).

Machine: ${machine}. Measured ${new Date().toISOString().slice(0, 10)}.

${table}
`;
  await writeFile(new URL('../BENCHMARKS.md', import.meta.url), doc);
}

await main();
