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
import { benchStudio } from '../src/engines/studio/bench.ts';
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

const encodeJpg = (image: RawImage): Promise<Buffer> =>
  sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } })
    .jpeg({ quality: 95, chromaSubsampling: '4:4:4' })
    .toBuffer();

async function main(): Promise<void> {
  const rows: [string, string, string][] = [];
  // Phase 1, sharp at its default settings (as the server runs): bare encode beside whole requests.
  const engine = createStudioEngine({ threads: 2 });
  let pixels: RawImage;
  try {
    pixels = await render(engine, 2496, 1664, 7);
  } finally {
    await engine.close();
  }
  const server = await startTestServer({ KILN_LOG_LEVEL: 'warn' });
  try {
    const request = (task: Record<string, unknown>) =>
      post(server, [{ taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: PROMPT, ...task }]).then(
        (response) => {
          if (response.status !== 200) throw new Error(`status ${response.status}`);
        },
      );
    await request({ width: 2496, height: 1664 });
    await encodeJpg(pixels);
    const encodes: number[] = [];
    const requests: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let start = performance.now();
      await encodeJpg(pixels);
      encodes.push(performance.now() - start);
      start = performance.now();
      await request({ width: 2496, height: 1664 });
      requests.push(performance.now() - start);
    }
    const encode = median(encodes);
    const e2e = median(requests);
    rows.push(['2496×1664 bare sharp JPG encode (q95, 4:4:4, default sharp threads)', `${encode.toFixed(1)} ms`, '1.00× (reference)']);
    rows.push(['2496×1664 one REST request end to end (JPG, URL output)', `${e2e.toFixed(1)} ms`, `${(e2e / encode).toFixed(2)}× encode (target ≤ 2.5)`]);

    const plain = { width: 1024, height: 1024 };
    await request({ ...plain, safety: { mode: 'fast' } }); // loads the classifier once
    const without: number[] = [];
    const withCheck: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let start = performance.now();
      await request(plain);
      without.push(performance.now() - start);
      start = performance.now();
      await request({ ...plain, safety: { mode: 'fast' } });
      withCheck.push(performance.now() - start);
    }
    rows.push(['1024×1024 REST request without safety check', `${median(without).toFixed(1)} ms`, '']);
    rows.push([
      '1024×1024 REST request with safety.mode fast',
      `${median(withCheck).toFixed(1)} ms`,
      `+${(median(withCheck) - median(without)).toFixed(1)} ms per checked image (target ≤ 80)`,
    ]);
  } finally {
    await server.close();
  }

  // Phase 2, the studio engine's own bench (it sets sharp to one thread for its encode reference).
  const studio = await benchStudio(RUNS);
  for (const size of ['2496x1664', '4096x4096']) {
    const label = size.replace('x', '×');
    rows.push([`${label} bare sharp JPG encode (q95, 4:4:4, one sharp thread)`, `${studio[`encode ${size}`]!.toFixed(1)} ms`, '1.00× (reference)']);
    rows.push([`${label} studio render alone, one thread`, `${studio[`render ${size}`]!.toFixed(1)} ms`, `${studio[`ratio render/encode ${size}`]!.toFixed(2)}× encode (target ≤ 1.5)`]);
  }
  rows.push(['2496×1664 one render on the idle 2-thread pool (split into strips)', `${studio['pool split 2496x1664']!.toFixed(1)} ms`, '']);
  rows.push([
    '2496×1664 one render on the pool, forced whole (one worker)',
    `${studio['pool whole 2496x1664']!.toFixed(1)} ms`,
    `${studio['ratio pool whole/split 2496x1664']!.toFixed(2)}× the split render`,
  ]);
  rows.push([
    '2496×1664 two concurrent renders on the pool',
    `${studio['pool 2x 2496x1664']!.toFixed(1)} ms`,
    `throughput ${studio['pool throughput ratio']!.toFixed(2)}× one whole render (target ≥ 1.7)`,
  ]);

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
