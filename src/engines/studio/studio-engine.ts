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

export function createStudioEngine(options: StudioEngineOptions = {}): ImageEngine {
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
        const output = await getPool().render(job, call.signal);
        const image: GeneratedImage = { index: slot.index, seed: slot.seed, pixels: { data: output.data, width: output.width, height: output.height, channels: 3 } };
        images.push(image);
        await call.onImage?.(image);
      }
      return { images, warnings };
    },
    async close(): Promise<void> {
      await pool?.close();
      pool = undefined;
    },
  };
}
