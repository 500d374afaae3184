/**
 * A test engine that answers every slot at once with the same small, already encoded image:
 * what is left of a task's cost is the platform's own (validation, store, files, events, HTTP).
 * Test and bench code only; it is injected with `startKiln(config, { engines })`, never
 * registered in the model registry.
 */
import sharp from 'sharp';
import type { EncodedImage, GenerateCall, GenerateResult, GeneratedImage, ImageEngine } from '../../src/engines/spec/image-engine.ts';

/** Makes a fixed `width`×`height` JPG once; the engine hands out the same bytes for every image. */
export async function createFixedEngine(options: { width?: number; height?: number } = {}): Promise<ImageEngine> {
  const width = options.width ?? 16;
  const height = options.height ?? 16;
  const bytes = await sharp({ create: { width, height, channels: 3, background: { r: 200, g: 120, b: 40 } } })
    .jpeg({ quality: 90 })
    .toBuffer();
  const image: EncodedImage = { bytes, format: 'jpg', width, height };
  return {
    name: 'fixed',
    maxImagesPerCall: 16,
    concurrency: 4,
    async generate(call: GenerateCall): Promise<GenerateResult> {
      const images: GeneratedImage[] = [];
      for (const slot of call.images) {
        const generated: GeneratedImage = { index: slot.index, seed: slot.seed, encoded: image };
        images.push(generated);
        await call.onImage?.(generated);
      }
      return { images, warnings: [] };
    },
    async close(): Promise<void> {},
  };
}
