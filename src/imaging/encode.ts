import sharp, { type Sharp } from 'sharp';
import type { EncodedImage, ImageFormat, RawImage } from '../engines/spec/image-engine.ts';

/** MIME type of each output format. */
export const MIME: Readonly<Record<ImageFormat, string>> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

/** How the process encodes, beyond what a task asks for (operator settings). */
export interface EncodeOptions {
  /**
   * JPEG Huffman tables computed for each image (default) or the standard ones. Lossless either
   * way (the decoded pixels are the same): optimised tables make files a few per cent smaller,
   * at about three times the encode time with sharp's mozjpeg (KILN_JPEG_OPTIMIZE_CODING).
   */
  readonly optimizeJpegCoding?: boolean;
}

function withFormat(pipeline: Sharp, format: ImageFormat, quality: number, options: EncodeOptions): Sharp {
  switch (format) {
    case 'jpg':
      // 4:4:4 chroma keeps thin coloured edges clean at the qualities users ask for (≥ 90).
      return pipeline.jpeg({ quality, chromaSubsampling: quality >= 90 ? '4:4:4' : '4:2:0', optimiseCoding: options.optimizeJpegCoding ?? true });
    case 'png':
      // Level 6 with adaptive filtering is libpng's usual trade-off; PNG is lossless, quality is ignored.
      return pipeline.png({ compressionLevel: 6, adaptiveFiltering: false });
    case 'webp':
      // effort 2 keeps a 4 MP encode near the JPEG encode's time; the quality knob still applies.
      return pipeline.webp({ quality, effort: 2 });
  }
}

/**
 * Threads libvips gives each image operation (process-wide: sharp's concurrency;
 * KILN_IMAGE_THREADS). sharp picks one itself on Linux with glibc (more fragment glibc's
 * allocator) and one per core elsewhere (macOS, musl, jemalloc builds); Kiln sets it on every
 * platform, one by default: it already runs several images at once (the encode slots), and an
 * encode has little for extra threads to share (two threads made 2496×1664 JPG requests 2–8 %
 * slower here; BENCHMARKS.md).
 */
export function setImageThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`image threads must be a whole number ≥ 1, not ${threads}`);
  sharp.concurrency(threads);
}

/** Encodes raw pixels in the requested format and quality (runs on libuv's pool, off the event loop). */
export async function encodeRaw(image: RawImage, format: ImageFormat, quality: number, options: EncodeOptions = {}): Promise<EncodedImage> {
  const input = sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } });
  const bytes = await withFormat(input, format, quality, options).toBuffer();
  return { bytes, format, width: image.width, height: image.height };
}

/** Re-encodes an encoded image when its format is not the requested one; otherwise returns it unchanged. */
export async function ensureFormat(image: EncodedImage, format: ImageFormat, quality: number, options: EncodeOptions = {}): Promise<EncodedImage> {
  if (image.format === format) return image;
  const bytes = await withFormat(sharp(image.bytes), format, quality, options).toBuffer();
  return { bytes, format, width: image.width, height: image.height };
}
