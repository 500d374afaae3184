import sharp from 'sharp';
import type { EncodedImage, RawImage } from '../../engines/spec/image-engine.ts';
import { MODEL_INPUT_SIZE } from './safety-protocol.ts';

/** What the safety classifier accepts: decoded pixels, an encoded image, or encoded bytes (JPG, PNG, WEBP, …). */
export type SafetyImage = RawImage | EncodedImage | Uint8Array;

/**
 * Downscales an image to the model's 224×224 RGB input with sharp (on libuv's thread pool, so
 * the event loop stays free).
 *
 * The whole frame is squeezed into the square (`fit: 'fill'`), never cropped: content at the
 * edges must be seen too, and nsfwjs itself stretches non-square input the same way.
 * Transparency is flattened onto white, as a viewer would usually show it.
 */
export async function toModelInput(image: SafetyImage): Promise<Uint8Array> {
  const { data, info } = await decoder(image)
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .resize(MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, { fit: 'fill' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== MODEL_INPUT_SIZE || info.height !== MODEL_INPUT_SIZE || info.channels !== 3) {
    throw new Error(`safety downscale produced ${info.width}×${info.height}×${info.channels}, expected ${MODEL_INPUT_SIZE}×${MODEL_INPUT_SIZE}×3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function decoder(image: SafetyImage): ReturnType<typeof sharp> {
  if (image instanceof Uint8Array) return sharp(image).rotate();
  if ('bytes' in image) return sharp(image.bytes).rotate();
  const { data, width, height, channels } = image;
  if (data.length !== width * height * channels) {
    throw new TypeError(`RawImage of ${width}×${height}×${channels} needs ${width * height * channels} bytes, got ${data.length}`);
  }
  return sharp(data, { raw: { width, height, channels } });
}
