import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { GenerateCall, ImageEngine, InputImage, RawImage } from '../spec/image-engine.ts';
import { deltaE, hexToRgb, rgbToLab } from './colour.ts';
import { elementRect } from './elements.ts';
import { horizontalReach } from './layer-raster.ts';
import { readPrompt } from './prompt-reader.ts';
import type { RenderJob } from './render-job.ts';
import { renderScene, stripBounds } from './renderer.ts';
import { planScene } from './scene-plan.ts';
import { createStudioEngine, thumbnail } from './studio-engine.ts';
import { crop, dominantLab, meanAbsoluteDifference, meanLab, ncc, paletteDistance, thumb, thumbDistance } from './test-helpers.ts';
import { WorkerPool } from './worker-pool.ts';

let engine: ImageEngine;
before(() => {
  engine = createStudioEngine({ threads: 2 });
});
after(async () => {
  await engine.close();
});

interface CallOptions {
  readonly width?: number;
  readonly height?: number;
  readonly seed?: number;
  readonly taskSeed?: number;
  readonly seriesIndex?: number;
  readonly seriesAmount?: number;
  readonly references?: readonly InputImage[];
  readonly elements?: readonly RawImage[];
}

function call(prompt: string, o: CallOptions = {}): GenerateCall {
  const seed = o.seed ?? 42;
  return {
    model: 'kiln:studio@1',
    prompt,
    width: o.width ?? 256,
    height: o.height ?? 256,
    images: [{ index: o.seriesIndex ?? 0, seed, ...(o.seriesIndex !== undefined ? { seriesIndex: o.seriesIndex } : {}) }],
    taskSeed: o.taskSeed ?? seed,
    ...(o.seriesAmount !== undefined ? { seriesAmount: o.seriesAmount } : {}),
    referenceImages: o.references ?? [],
    elements: (o.elements ?? []).map((pixels) => ({ frontal: { pixels, encoded: { bytes: new Uint8Array(), format: 'png', width: pixels.width, height: pixels.height } }, views: [] })),
    output: { format: 'jpg', quality: 95 },
    options: {},
    signal: new AbortController().signal,
    checkpoint: { load: async () => undefined, save: async () => {} },
    includeCost: false,
  };
}

async function render(prompt: string, o: CallOptions = {}): Promise<RawImage> {
  const result = await engine.generate(call(prompt, o));
  const pixels = result.images[0]?.pixels;
  assert.ok(pixels, 'studio returns pixels');
  return pixels;
}

function asInput(pixels: RawImage): InputImage {
  return { pixels, encoded: { bytes: new Uint8Array(), format: 'png', width: pixels.width, height: pixels.height } };
}

/** A flat-ish two-tone reference with a bright blob, made with sharp. */
async function referenceImage(top: string, bottom: string, glow: string): Promise<RawImage> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="320"><rect width="320" height="180" fill="${top}"/><rect y="180" width="320" height="140" fill="${bottom}"/><circle cx="230" cy="90" r="40" fill="${glow}"/></svg>`;
  const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
}

describe('studio engine', () => {
  test('the warm-up hands its first large render out (real content, for the encoder) and stops when aborted', async () => {
    const warming = createStudioEngine({ threads: 2 });
    try {
      const stop = new AbortController();
      const large: { width: number; height: number; bytes: number; distinct: number }[] = [];
      await warming.warm(stop.signal, (pixels) => {
        const sample = new Set<number>();
        for (let i = 0; i < pixels.data.length; i += 997) sample.add(pixels.data[i]!);
        large.push({ width: pixels.width, height: pixels.height, bytes: pixels.data.length, distinct: sample.size });
        stop.abort();
      });
      assert.equal(large.length, 1);
      assert.deepEqual([large[0]!.width, large[0]!.height, large[0]!.bytes], [2496, 1664, 2496 * 1664 * 3]);
      assert.ok(large[0]!.distinct > 50, `a rendered scene, not a flat image (${large[0]!.distinct} distinct values)`);
    } finally {
      await warming.close();
    }
  });

  test('returns RGB pixels of exactly the asked size, on a worker', async () => {
    const image = await render('a lighthouse on a cliff above the sea at dusk', { width: 384, height: 256 });
    assert.equal(image.width, 384);
    assert.equal(image.height, 256);
    assert.equal(image.channels, 3);
    assert.equal(image.data.length, 384 * 256 * 3);
    assert.equal(engine.name, 'studio');
    assert.equal(engine.maxImagesPerCall, 1);
    assert.equal(engine.concurrency, 2);
  });

  test('is deterministic: same inputs and seed give identical pixels', async () => {
    const prompt = 'misty pine forest below snowy mountains, lake reflections, sunrise, watercolor';
    const [a, b] = await Promise.all([render(prompt, { seed: 7 }), render(prompt, { seed: 7 })]);
    assert.deepEqual(Buffer.from(a.data), Buffer.from(b.data));
  });

  test('another seed gives another layout (MAD ≥ 10 % of range)', async () => {
    for (const prompt of ['a quiet valley with a river and hills', 'harbor town with boats and gulls, golden hour']) {
      const [a, b] = await Promise.all([render(prompt, { seed: 1 }), render(prompt, { seed: 2 })]);
      const mad = meanAbsoluteDifference(a.data, b.data);
      assert.ok(mad >= 25.5, `${prompt}: mean absolute difference ${mad.toFixed(1)}`);
    }
  });

  test('colour words: dominant colours come within ΔE 20 of most named colours', async () => {
    const prompts = [
      'terraced hills at midday, color harmony of jade, coral, saffron and porcelain white',
      'a calm lake under mountains, palette of teal, cream, brass and deep blue',
      'desert dunes, colours of rust, ochre, apricot and cerulean',
      'a city skyline, lavender, navy, gold and emerald',
    ];
    for (const prompt of prompts) {
      const named = readPrompt(prompt).colours.filter((c) => c.weight >= 1);
      assert.ok(named.length >= 4, `${prompt}: lexicon finds the colours`);
      const image = await render(prompt, { width: 384, height: 256 });
      const swatches = dominantLab(image, 8);
      const hits = named.filter((c) => Math.min(...swatches.map((s) => deltaE(s.lab, rgbToLab(c.rgb)))) <= 20);
      assert.ok(hits.length / named.length >= 0.75, `${prompt}: ${hits.length}/${named.length} colours found (${named.map((c) => c.name).join(', ')})`);
    }
  });

  test('light words: night is dark, snow and glacier bright and cool, desert sunset warm', async () => {
    const night = meanLab(await render('a village at night under a starry sky', { seed: 3 }));
    assert.ok(night[0] < 30, `night lightness ${night[0].toFixed(1)}`);
    const snow = meanLab(await render('snowfall over a glacier and icy peaks, morning', { seed: 3 }));
    assert.ok(snow[0] > 60, `snow lightness ${snow[0].toFixed(1)}`);
    assert.ok(snow[2] < 0, `snow is cool (b* ${snow[2].toFixed(1)})`);
    const desert = meanLab(await render('desert dunes at sunset', { seed: 3 }));
    assert.ok(desert[2] > 15 && desert[1] > 0, `desert sunset is warm (a* ${desert[1].toFixed(1)}, b* ${desert[2].toFixed(1)})`);
  });

  test('series: one world and palette, varied views', async () => {
    const series = async (prompt: string, taskSeed: number): Promise<RawImage[]> => {
      const images: RawImage[] = [];
      for (let i = 0; i < 4; i += 2) {
        images.push(...(await Promise.all([0, 1].map((k) => render(prompt, { taskSeed, seed: taskSeed + i + k, seriesIndex: i + k, seriesAmount: 4 })))));
      }
      return images;
    };
    const a = await series('orbital garden above a rust planet, sunrise haze, copper and sand', 11);
    const b = await series('harbor city at night with lanterns, teal and gold', 12);
    const pa = a.map((image) => dominantLab(image, 5));
    const pb = b.map((image) => dominantLab(image, 5));
    let within = 0;
    let n = 0;
    for (const group of [pa, pb]) {
      for (let i = 0; i < group.length; i++) for (let j = i + 1; j < group.length; j++) (within += paletteDistance(group[i]!, group[j]!)), n++;
    }
    within /= n;
    let between = 0;
    for (const x of pa) for (const y of pb) between += paletteDistance(x, y);
    between /= pa.length * pb.length;
    assert.ok(within < between * 0.5, `within ${within.toFixed(1)} vs between ${between.toFixed(1)}`);
    assert.ok(meanAbsoluteDifference(a[0]!.data, a[1]!.data) > 8, 'views within a series differ');
  });

  test('references pull the palette toward them (distance at least halves)', async () => {
    const refs = [await referenceImage('#d2448a', '#3a1450', '#ffd166'), await referenceImage('#f28c28', '#5a1e3c', '#fff1c1')];
    const refSwatches = refs.flatMap((r) => dominantLab(r, 3));
    for (const prompt of ['a turquoise sea with green islands at noon', 'snowy mountains above a pine forest, morning']) {
      const without = dominantLab(await render(prompt, { width: 320, height: 256 }), 6);
      const withRefs = dominantLab(await render(prompt, { width: 320, height: 256, references: refs.map(asInput) }), 6);
      const d0 = paletteDistance(without, refSwatches);
      const d1 = paletteDistance(withRefs, refSwatches);
      assert.ok(d1 <= d0 * 0.5, `${prompt}: distance ${d0.toFixed(1)} → ${d1.toFixed(1)}`);
    }
  });

  test('elements: the frontal image appears at the same place in every output', async () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="360"><rect width="300" height="360" fill="#c9b8a6"/><ellipse cx="150" cy="170" rx="90" ry="120" fill="#e8c4a0"/><circle cx="115" cy="150" r="12" fill="#2a1d14"/><circle cx="185" cy="150" r="12" fill="#2a1d14"/><path d="M110 230 Q150 260 190 230" stroke="#7a2a2a" stroke-width="8" fill="none"/><rect y="0" width="300" height="60" fill="#3b2a20"/></svg>`;
    const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const face: RawImage = { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
    const width = 384;
    const height = 256;
    const rect = elementRect(width, height, 1, 0, face.width, face.height);
    const { data: expected } = await sharp(Buffer.from(face.data), { raw: { width: face.width, height: face.height, channels: 3 } }).resize(rect.width, rect.height, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const target = crop({ data: new Uint8Array(expected), width: rect.width, height: rect.height, channels: 3 }, 0, 0, rect.width, rect.height);
    const outputs = await Promise.all([
      render('a festival plaza with lanterns, portrait of <<<element_1>>>', { width, height, seed: 5, taskSeed: 5, seriesIndex: 0, seriesAmount: 3, elements: [face] }),
      render('a festival plaza with lanterns, portrait of <<<element_1>>>', { width, height, seed: 6, taskSeed: 5, seriesIndex: 1, seriesAmount: 3, elements: [face] }),
      render('a festival plaza with lanterns, portrait of <<<element_1>>>', { width, height, seed: 99, elements: [face] }),
    ]);
    for (const output of outputs) {
      const score = ncc(crop(output, rect.x, rect.y, rect.width, rect.height), target);
      assert.ok(score >= 0.8, `normalised cross-correlation ${score.toFixed(3)}`);
    }
  });

  test('variety: twenty prompts give twenty different pictures', async () => {
    const prompts = [
      'snowy mountains above a frozen lake at sunrise', 'a desert caravan among dunes at sunset', 'neon city skyline at night in the rain',
      'terraced rice fields on misty hills, morning', 'a lighthouse on sea cliffs, stormy overcast', 'cherry blossom garden with petals, pastel',
      'an orbital station above a ringed planet, stars', 'a harbor town with boats and gulls, golden hour', 'a pine forest by a river at dusk with fireflies',
      'retro-futurist railway viaduct over a glacier', 'a grand glass conservatory with succulents, warm sunrise', 'tropical islands with palms in a turquoise sea, noon',
      'an ancient arcade of arches overlooking the valley, editorial', 'hot air balloons over rolling hills, vibrant', 'a village of tiled rooftops with lanterns at night',
      'aurora over the tundra, minimal', 'a watercolor of a quiet lake with birds', 'red rock mesas and canyons, dusty afternoon',
      'kites above a seaside promenade, crowd, cinematic', 'zqx plorb vantish meddle',
    ];
    const thumbs: Float64Array[] = [];
    for (let i = 0; i < prompts.length; i += 2) {
      const pair = await Promise.all(prompts.slice(i, i + 2).map((p) => render(p, { width: 192, height: 128, seed: 1000 + i })));
      thumbs.push(...pair.map((image) => thumb(image, 16)));
    }
    let min = Infinity;
    let worst = '';
    for (let i = 0; i < thumbs.length; i++) {
      for (let j = i + 1; j < thumbs.length; j++) {
        const d = thumbDistance(thumbs[i]!, thumbs[j]!);
        if (d < min) (min = d), (worst = `${prompts[i]} / ${prompts[j]}`);
      }
    }
    assert.ok(min > 10, `closest pair ${min.toFixed(1)}: ${worst}`);
  });

  test('a prompt of unknown words still makes a picture with structure', async () => {
    const image = await render('zqx plorb vantish meddle', { width: 256, height: 192 });
    const swatches = dominantLab(image, 5);
    const spread = Math.max(...swatches.map((s) => s.lab[0])) - Math.min(...swatches.map((s) => s.lab[0]));
    assert.ok(spread > 25, `lightness spread ${spread.toFixed(1)}`);
  });

  test('an aborted call rejects without rendering', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(engine.generate({ ...call('anything'), signal: controller.signal }), (error: Error) => error.name === 'AbortError');
  });
});

/** A synthetic RGB image: smooth gradients and a few hard edges, deterministic. */
function pattern(width: number, height: number, salt: number): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      const block = ((x >> 4) + (y >> 4) + salt) & 1;
      data[p] = (x * 255) / width;
      data[p + 1] = block ? 200 : (y * 255) / height;
      data[p + 2] = (salt * 53 + x + y) & 255;
    }
  }
  return { data, width, height, channels: 3 };
}

/** Jobs that exercise every stage across strip edges: water reflections (the one sideways read), stars, planets, sprites, references, a series shot, an element. */
function stripJobs(): RenderJob[] {
  const reference = thumbnail(pattern(320, 240, 1));
  const face = pattern(150, 180, 2);
  const jobs: RenderJob[] = [];
  const cases: [string, Partial<RenderJob>][] = [
    ['a calm lake at dusk under snowy mountains, stars, reflections, fog', {}],
    ['harbor city at night with lanterns, boats and gulls, teal and gold', { seriesIndex: 2, seriesAmount: 4, taskSeed: 9 }],
    ['an orbital garden above a ringed planet over the sea, copper and teal, retro-futurist', {}],
    ['a turquoise sea with green islands, kites and birds, like <<<image_1>>>', { references: [reference] }],
    ['a festival plaza with lanterns and petals, portrait of <<<element_1>>>', { elements: [face], seriesIndex: 1, seriesAmount: 3, taskSeed: 4 }],
  ];
  for (const [width, height] of [[1000, 504], [1002, 500], [333, 257]] as const) {
    for (const [i, [prompt, extra]] of cases.entries()) jobs.push({ prompt, width, height, seed: 20 + i, taskSeed: 20 + i, references: [], elements: [], ...extra });
  }
  return jobs;
}

describe('strip renders', () => {
  test('strips of columns are byte-identical to the whole image (2, 3 and uneven strips)', () => {
    let withWater = 0;
    for (const job of stripJobs()) {
      const plan = planScene(job);
      if (horizontalReach(plan) > 0) withWater++;
      const whole = Buffer.from(renderScene(plan));
      const { width } = job;
      // Two and three even strips, and uneven ones narrower than the water's reach (4 columns at the left edge, 8 in the middle).
      const mid = Math.floor(width / 8) * 4;
      const splits = [stripBounds(width, 2), stripBounds(width, 3), [[0, 4], [4, mid], [mid, mid + 8], [mid + 8, width]] as [number, number][]];
      for (const bounds of splits) {
        const out = new Uint8Array(new SharedArrayBuffer(width * job.height * 3));
        // Each strip from its own plan, as separate workers would make it.
        for (const [x0, x1] of bounds) renderScene(planScene(job), { out, x0, x1 });
        assert.ok(whole.equals(Buffer.from(out.buffer)), `${job.prompt} ${width}×${job.height} in strips ${bounds.map((b) => b.join('…')).join(', ')}`);
      }
    }
    assert.ok(withWater >= 6, `${withWater} jobs have water reflections`);
  });

  test('strip bounds fall on multiples of four columns and cover the width', () => {
    for (const [width, parts] of [[1000, 2], [1002, 3], [2496, 2], [7, 3], [4, 2], [13, 5]] as const) {
      const bounds = stripBounds(width, parts);
      assert.equal(bounds[0]![0], 0);
      assert.equal(bounds.at(-1)![1], width);
      for (let i = 0; i < bounds.length; i++) {
        const [x0, x1] = bounds[i]!;
        assert.ok(x1 > x0 && x0 % 4 === 0 && (x1 % 4 === 0 || x1 === width), `${width}/${parts}: ${x0}…${x1}`);
        if (i > 0) assert.equal(x0, bounds[i - 1]![1]);
      }
      assert.ok(bounds.length <= parts);
    }
    assert.throws(() => renderScene(planScene({ prompt: 'hills', width: 64, height: 32, seed: 1, taskSeed: 1, references: [], elements: [] }), { out: new Uint8Array(64 * 32 * 3), x0: 2, x1: 64 }));
  });

  test('the pool renders an image in 2 or 3 strips on several workers, byte-identical to one worker', async () => {
    const pool = new WorkerPool(3);
    try {
      const jobs = stripJobs().filter((_, i) => i % 2 === 0);
      for (const job of jobs) {
        const whole = await pool.render(job, undefined, undefined, 1);
        assert.equal(whole.strips, 1);
        for (const strips of [2, 3]) {
          const split = await pool.render(job, undefined, undefined, strips);
          assert.equal(split.strips, strips);
          assert.ok(split.data.buffer instanceof SharedArrayBuffer, 'strips are written into one shared buffer');
          assert.ok(Buffer.from(whole.data).equals(Buffer.from(split.data.buffer)), `${job.prompt} ${job.width}×${job.height} in ${strips} strips`);
        }
      }
      // sharp encodes pixels over a SharedArrayBuffer as it does a plain copy of them.
      const job = jobs[0]!;
      const split = await pool.render(job, undefined, undefined, 2);
      const encode = (data: Uint8Array): Promise<Buffer> => sharp(data, { raw: { width: job.width, height: job.height, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
      assert.ok((await encode(split.data)).equals(await encode(new Uint8Array(split.data))));
    } finally {
      await pool.close();
    }
  });

  test('a large image on a free pool is split; images asked for together render whole, one per worker', async () => {
    const pool = new WorkerPool(2);
    try {
      const job = (seed: number, width: number, height: number): RenderJob => ({ prompt: 'mountains above a lake', width, height, seed, taskSeed: seed, references: [], elements: [] });
      assert.equal((await pool.render(job(1, 1280, 800))).strips, 2);
      assert.equal((await pool.render(job(2, 640, 400))).strips, 1, 'a small image renders whole');
      const together = await Promise.all([pool.render(job(3, 1280, 800)), pool.render(job(4, 1280, 800))]);
      assert.deepEqual(together.map((output) => output.strips), [1, 1]);
      // One arriving while another is split is split too (the strips' workers are free again soon).
      const first = pool.render(job(5, 1280, 800));
      await new Promise((resolve) => setTimeout(resolve, 1));
      const second = pool.render(job(6, 1280, 800));
      assert.deepEqual([(await first).strips, (await second).strips], [2, 2]);
    } finally {
      await pool.close();
    }
  });
});

describe('worker pool', () => {
  test('runs two renders at the same time', async () => {
    const pool = new WorkerPool(2);
    try {
      const job = (seed: number, size: number) => ({ prompt: 'mountains above a lake', width: size, height: size, seed, taskSeed: seed, references: [], elements: [] });
      // Warm both workers first, so that start-up time does not order the events.
      await Promise.all([pool.render(job(1, 128)), pool.render(job(2, 128))]);
      const events: string[] = [];
      await Promise.all(
        [3, 4].map((seed) =>
          pool.render(job(seed, 1536), undefined, () => events.push(`start ${seed}`)).then(() => events.push(`end ${seed}`)),
        ),
      );
      assert.deepEqual(events.slice(0, 2).map((e) => e.split(' ')[0]), ['start', 'start'], events.join(', '));
    } finally {
      await pool.close();
    }
  });

  test('a queued render is dropped when its signal aborts', async () => {
    const pool = new WorkerPool(1);
    try {
      const job = { prompt: 'hills', width: 512, height: 512, seed: 1, taskSeed: 1, references: [], elements: [] };
      const controller = new AbortController();
      const first = pool.render(job);
      const second = pool.render(job, controller.signal);
      controller.abort();
      await assert.rejects(second, (error: Error) => error.name === 'AbortError');
      assert.equal((await first).width, 512);
    } finally {
      await pool.close();
    }
  });

  test('an aborted split render drops its queued strips and rejects', async () => {
    const pool = new WorkerPool(1);
    try {
      const job = { prompt: 'a lake under hills', width: 1024, height: 1024, seed: 1, taskSeed: 1, references: [], elements: [] };
      const controller = new AbortController();
      const running = pool.render(job, controller.signal, undefined, 3);
      setTimeout(() => controller.abort(), 5);
      await assert.rejects(running, (error: Error) => error.name === 'AbortError');
      assert.equal((await pool.render({ ...job, width: 64, height: 64 })).width, 64, 'the pool goes on');
    } finally {
      await pool.close();
    }
  });
});

void hexToRgb;
