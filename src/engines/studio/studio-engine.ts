/**
 * The studio engine: a procedural renderer on the CPU (not a neural model). It reads the prompt
 * through a lexicon, composes a layered scene from the seeds and renders it in worker threads. A
 * large image that finds several workers free is drawn by all of them at once, in vertical strips
 * written into one shared buffer (the returned pixels are then a view of a SharedArrayBuffer).
 */
import { availableParallelism } from 'node:os';
import type { GenerateCall, GenerateResult, GeneratedImage, ImageEngine, RawImage } from '../spec/image-engine.ts';
import type { RenderJob } from './render-job.ts';
import type { Thumbnail } from './references.ts';
import { abortError, WorkerPool } from './worker-pool.ts';

export interface StudioEngineOptions {
  /** Render worker threads; default `os.availableParallelism()`. */
  readonly threads?: number;
  /**
   * Images of at least this many pixels that find two or more workers free are rendered by all of
   * them at once, in vertical strips (the same pixels, sooner); default 1 MP, `Infinity` never.
   */
  readonly splitPixels?: number;
}

/** Box-filters an image down to at most `maxSide` pixels on its long side (references only need their colours and shapes). */
export function thumbnail(image: RawImage, maxSide = 64): Thumbnail {
  const scale = Math.max(1, Math.max(image.width, image.height) / maxSide);
  const width = Math.max(1, Math.round(image.width / scale));
  const height = Math.max(1, Math.round(image.height / scale));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy0 = Math.floor((y * image.height) / height);
    const sy1 = Math.max(sy0 + 1, Math.floor(((y + 1) * image.height) / height));
    for (let x = 0; x < width; x++) {
      const sx0 = Math.floor((x * image.width) / width);
      const sx1 = Math.max(sx0 + 1, Math.floor(((x + 1) * image.width) / width));
      let r = 0;
      let g = 0;
      let b = 0;
      let n = 0;
      // Sample a sparse grid inside the box: enough for a 64 px thumbnail, cheap on the event loop.
      const stepY = Math.max(1, Math.floor((sy1 - sy0) / 4));
      const stepX = Math.max(1, Math.floor((sx1 - sx0) / 4));
      for (let sy = sy0; sy < sy1; sy += stepY) {
        for (let sx = sx0; sx < sx1; sx += stepX) {
          const p = (sy * image.width + sx) * image.channels;
          r += image.data[p]!;
          g += image.data[p + 1]!;
          b += image.data[p + 2]!;
          n++;
        }
      }
      const q = (y * width + x) * 3;
      data[q] = r / n;
      data[q + 1] = g / n;
      data[q + 2] = b / n;
    }
  }
  return { data, width, height, channels: 3 };
}

/** The studio engine, with a warm-up for the start of a server. */
export interface StudioEngine extends ImageEngine {
  /**
   * Starts the workers and runs a few small renders on each (whole and in strips), so that the
   * first requests find loaded modules and compiled render loops. Resolves when done; aborting
   * `signal` drops what is not yet rendering (requests then go first) and resolves. `onLarge`
   * gets the first large render's pixels, e.g. to warm an encoder with real content.
   */
  warm(signal?: AbortSignal, onLarge?: (pixels: RawImage) => void): Promise<void>;
}

/** Images above this many pixels are never split (see `generate`). */
const WHOLE_PIXELS = 8_500_000;

/**
 * What a warm-up renders: scenes that between them use most of the renderer's code paths
 * (towns, water, mountains, forests, sky bodies, props, weather), so that their loops are compiled.
 */
const WARM_PROMPTS = [
  'a harbour town at golden hour, boats, a lighthouse, mist over the water, distant hills, clouds, film grain',
  'a festival in a hillside village plaza, lanterns, banners, a dragon kite and birds above tiled rooftops, warm sunlight',
  'snowy mountains and a pine forest under a starry night sky with an aurora and the moon, a river, cinematic',
  'a rainy neon city street at dusk, an airship, figures with umbrellas, reflections, watercolor, vintage',
  'a crimson lighthouse on emerald cliffs above a turquoise sea, three sailboats, a whale, a castle and a windmill beside an oak',
  // A palette named colour by colour (it changes the plan's numbers, and with them the render's compiled code).
  'a quiet river valley in spring with a kite over the fields, teal, amber, ivory, slate and rose, late-afternoon light',
] as const;

export function createStudioEngine(options: StudioEngineOptions = {}): StudioEngine {
  const threads = Math.max(1, options.threads ?? availableParallelism());
  let pool: WorkerPool | undefined;
  // Workers start on first use, so constructing the engine (e.g. in config checks) costs nothing.
  const getPool = (): WorkerPool => (pool ??= new WorkerPool(threads, options.splitPixels !== undefined ? { splitPixels: options.splitPixels } : {}));

  return {
    name: 'studio',
    maxImagesPerCall: 1,
    concurrency: threads,
    async generate(call: GenerateCall): Promise<GenerateResult> {
      if (call.signal.aborted) throw abortError(call.signal);
      const references = call.referenceImages.map((image) => thumbnail(image.pixels));
      const elements: Thumbnail[] = call.elements.map((element) => element.frontal.pixels);
      const warnings: string[] = [];
      if (Object.keys(call.options).length > 0) warnings.push(`studio ignores engine options: ${Object.keys(call.options).join(', ')}`);
      const images: GeneratedImage[] = [];
      for (const slot of call.images) {
        const job: RenderJob = {
          prompt: call.prompt,
          width: call.width,
          height: call.height,
          seed: slot.seed,
          taskSeed: call.taskSeed,
          ...(slot.seriesIndex !== undefined ? { seriesIndex: slot.seriesIndex } : {}),
          ...(call.seriesAmount !== undefined ? { seriesAmount: call.seriesAmount } : {}),
          references,
          elements,
        };
        // Very large images render whole: a split one lives in a SharedArrayBuffer that only
        // garbage collections in every thread free, and a task of many of them piled hundreds of
        // megabytes up; a whole one is transferred and freed as soon as it is encoded.
        const whole = call.width * call.height > WHOLE_PIXELS ? 1 : undefined;
        const output = await getPool().render(job, call.signal, undefined, whole);
        const image: GeneratedImage = { index: slot.index, seed: slot.seed, pixels: { data: output.data, width: output.width, height: output.height, channels: 3 } };
        images.push(image);
        await call.onImage?.(image);
      }
      return { images, warnings };
    },
    async warm(signal?: AbortSignal, onLarge?: (pixels: RawImage) => void): Promise<void> {
      const job = (prompt: string, width: number, height: number, seed: number): RenderJob => ({ prompt, width, height, seed, taskSeed: seed, references: [], elements: [] });
      const workers = getPool();
      // Every prompt whole on every worker (asked for together, so each worker takes one), then
      // images of a typical large size split over every worker, as an idle pool draws them.
      try {
        for (const [i, prompt] of WARM_PROMPTS.entries()) {
          await Promise.all(Array.from({ length: threads }, (_, t) => workers.render(job(prompt, 640, 448, i * threads + t + 1), signal, undefined, 1)));
        }
        // Twice over: a worker's large-image path reaches its speed after a few renders of it (a
        // third round rendered no faster, and the whole warm-up must fit in the start's budget).
        for (let round = 0; round < 2; round++) {
          for (const [i, prompt] of WARM_PROMPTS.entries()) {
            const output = await workers.render(job(prompt, 2496, 1664, 100 + round * 10 + i), signal, undefined, threads);
            if (round === 0 && i === 0) onLarge?.({ data: output.data, width: output.width, height: output.height, channels: 3 });
          }
        }
      } catch (error) {
        if (!signal?.aborted) throw error;
      }
    },
    async close(): Promise<void> {
      await pool?.close();
      pool = undefined;
    },
  };
}
