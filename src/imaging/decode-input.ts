/**
 * Probe and normalise images that clients send: reference images (`decodeInputImage`) and
 * `imageUpload` images (`normalizeUploadImage`).
 *
 * Safety first: the format is sniffed from the bytes (never the declared type), so only the
 * JPEG, PNG, WebP, GIF and BMP loaders ever see client bytes (SVG, with its external
 * references, never does). The pixel count is read from the header and checked before
 * anything is decoded, and sharp's `limitInputPixels` is set as well, so a decompression bomb
 * is refused, not decoded.
 */
import sharp, { type Sharp, type SharpOptions } from 'sharp';
import type { EncodedImage, ImageFormat, InputImage } from '../engines/spec/image-engine.ts';
import { BmpDecodeError, decodeBmp, isBmp } from './decode-bmp.ts';

/** Formats a client image may arrive in. */
export type InputFormat = ImageFormat | 'gif' | 'bmp';

/** Why an image was refused. */
export type ImageProblem = 'unsupportedFormat' | 'tooManyPixels' | 'corrupt' | 'tooSmall' | 'badAspect';

/** A refused image. `message` is written for the client ("The image is 200×200 …"). */
export class ImageDecodeError extends Error {
  constructor(
    readonly problem: ImageProblem,
    message: string,
  ) {
    super(message);
    this.name = 'ImageDecodeError';
  }
}

/** Rules for reference images. Defaults follow `kiln-extensions.md`. */
export interface DecodeInputOptions {
  /** Shortest side allowed, after EXIF orientation. Default 300. */
  readonly minSide?: number;
  /** Largest long-side / short-side ratio. Default 2.5. */
  readonly maxAspect?: number;
  /** Largest width × height decoded. Default 50 000 000 (a 50 MP photo). */
  readonly maxInputPixels?: number;
  /** Long side of the returned `pixels`. Default 1024. */
  readonly pixelsLongSide?: number;
  /** Accept GIF and BMP as well (converted to PNG). Default `false`. */
  readonly acceptLegacyFormats?: boolean;
}

/** Rules for `imageUpload`. */
export interface NormalizeUploadOptions {
  /** Long side of the stored image; larger images are scaled down. Default 2048. */
  readonly maxLongSide?: number;
  /** Largest width × height decoded. Default 50 000 000. */
  readonly maxInputPixels?: number;
}

const DEFAULT_MAX_INPUT_PIXELS = 50_000_000;
const JPEG_QUALITY = 95;
const WEBP_QUALITY = 95;
const WHITE = { r: 255, g: 255, b: 255 };

/** Sniffs the format from the first bytes; `undefined` for anything else. */
export function sniffImageFormat(bytes: Uint8Array): InputFormat | undefined {
  const at = (offset: number, text: string) => Buffer.from(bytes.subarray(offset, offset + text.length)).toString('latin1') === text;
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpg';
  if (at(0, '\x89PNG\r\n\x1a\n')) return 'png';
  if (at(0, 'RIFF') && at(8, 'WEBP')) return 'webp';
  if (at(0, 'GIF87a') || at(0, 'GIF89a')) return 'gif';
  if (isBmp(bytes)) return 'bmp';
  return undefined;
}

/**
 * Checks a reference image and returns it normalised: EXIF orientation applied, `encoded` in
 * its own format (PNG for GIF/BMP) at full size, `pixels` as RGB (alpha flattened onto white)
 * with the long side at most `pixelsLongSide`.
 */
export async function decodeInputImage(bytes: Uint8Array, options: DecodeInputOptions = {}): Promise<InputImage> {
  const maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  const format = acceptedFormat(bytes, options.acceptLegacyFormats ?? false);
  const probe = await openImage(bytes, format, maxInputPixels);
  checkShape(probe.width, probe.height, options.minSide ?? 300, options.maxAspect ?? 2.5);

  const encoded =
    probe.orientation <= 1 && format !== 'gif' && format !== 'bmp'
      ? { bytes, format, width: probe.width, height: probe.height }
      : await encode(probe.image().autoOrient(), outputFormatOf(format), probe.width, probe.height);

  const long = options.pixelsLongSide ?? 1024;
  const { data, info } = await decoding(() =>
    probe
      .image()
      .autoOrient()
      .flatten({ background: WHITE })
      .resize({ width: long, height: long, fit: 'inside', withoutEnlargement: true })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true }),
  );
  if (info.channels !== 3) throw new ImageDecodeError('corrupt', 'The image could not be converted to RGB.');
  return {
    encoded,
    pixels: { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 },
  };
}

/**
 * Normalises an `imageUpload` image for storage: JPG, PNG, WEBP, GIF (first frame) or BMP in;
 * EXIF orientation applied, metadata stripped, long side at most `maxLongSide`, same format out
 * (GIF and BMP become PNG).
 */
export async function normalizeUploadImage(bytes: Uint8Array, options: NormalizeUploadOptions = {}): Promise<EncodedImage> {
  const format = acceptedFormat(bytes, true);
  const probe = await openImage(bytes, format, options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS);
  const long = options.maxLongSide ?? 2048;
  const scale = Math.min(1, long / Math.max(probe.width, probe.height));
  const width = Math.max(1, Math.round(probe.width * scale));
  const height = Math.max(1, Math.round(probe.height * scale));
  const pipeline = probe.image().autoOrient().resize({ width, height, fit: 'fill' });
  return encode(pipeline, outputFormatOf(format), width, height);
}

function acceptedFormat(bytes: Uint8Array, acceptLegacy: boolean): InputFormat {
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    throw new ImageDecodeError('unsupportedFormat', `The data is not a supported image (${describe(bytes)}); use JPG, PNG or WEBP.`);
  }
  if (!acceptLegacy && (format === 'gif' || format === 'bmp')) {
    throw new ImageDecodeError('unsupportedFormat', `${format.toUpperCase()} images are not accepted here; use JPG, PNG or WEBP.`);
  }
  return format;
}

interface Probe {
  /** Width and height after EXIF orientation. */
  readonly width: number;
  readonly height: number;
  readonly orientation: number;
  /** A fresh pipeline over the source, with the pixel limit set. */
  image(): Sharp;
}

async function openImage(bytes: Uint8Array, format: InputFormat, maxInputPixels: number): Promise<Probe> {
  if (format === 'bmp') return openBmp(bytes, maxInputPixels);
  const options: SharpOptions = { limitInputPixels: maxInputPixels, failOn: 'error', pages: 1 };
  const image = () => sharp(bytes, options);
  // metadata() reads the header only, so the size is known before any pixel is decoded.
  const meta = await decoding(() => sharp(bytes, { ...options, limitInputPixels: false }).metadata());
  const { width, height } = meta;
  if (!width || !height) throw new ImageDecodeError('corrupt', 'The image has no readable size.');
  checkPixelCount(width, height, maxInputPixels);
  const orientation = meta.orientation ?? 1;
  const swap = orientation >= 5 && orientation <= 8;
  return { width: swap ? height : width, height: swap ? width : height, orientation, image };
}

function openBmp(bytes: Uint8Array, maxInputPixels: number): Probe {
  try {
    const bmp = decodeBmp(bytes, maxInputPixels);
    const raw = { width: bmp.width, height: bmp.height, channels: bmp.channels };
    return { width: bmp.width, height: bmp.height, orientation: 1, image: () => sharp(bmp.data, { raw }) };
  } catch (error) {
    if (!(error instanceof BmpDecodeError)) throw error;
    throw new ImageDecodeError(error.tooManyPixels ? 'tooManyPixels' : 'corrupt', error.message);
  }
}

function checkPixelCount(width: number, height: number, maxInputPixels: number): void {
  if (width * height > maxInputPixels) {
    throw new ImageDecodeError(
      'tooManyPixels',
      `The image declares ${width}×${height} pixels; at most ${maxInputPixels} pixels are decoded.`,
    );
  }
}

function checkShape(width: number, height: number, minSide: number, maxAspect: number): void {
  if (Math.min(width, height) < minSide) {
    throw new ImageDecodeError('tooSmall', `The image is ${width}×${height}; each side must be at least ${minSide} px.`);
  }
  if (Math.max(width, height) / Math.min(width, height) > maxAspect) {
    throw new ImageDecodeError(
      'badAspect',
      `The image is ${width}×${height}; its aspect ratio must be between 1:${maxAspect} and ${maxAspect}:1.`,
    );
  }
}

function outputFormatOf(format: InputFormat): ImageFormat {
  return format === 'gif' || format === 'bmp' ? 'png' : format;
}

async function encode(pipeline: Sharp, format: ImageFormat, width: number, height: number): Promise<EncodedImage> {
  const formatted =
    format === 'jpg'
      ? pipeline.flatten({ background: WHITE }).jpeg({ quality: JPEG_QUALITY })
      : format === 'webp'
        ? pipeline.webp({ quality: WEBP_QUALITY })
        : pipeline.png();
  const { data, info } = await decoding(() => formatted.toBuffer({ resolveWithObject: true }));
  if (info.width !== width || info.height !== height) {
    throw new ImageDecodeError('corrupt', 'The image decoded to an unexpected size.');
  }
  return { bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), format, width, height };
}

/** Runs a sharp step; libvips failures (truncated or corrupt data, pixel limit) become `ImageDecodeError`. */
async function decoding<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof ImageDecodeError) throw error;
    const text = error instanceof Error ? error.message : '';
    if (/pixel limit/i.test(text)) throw new ImageDecodeError('tooManyPixels', 'The image has more pixels than are decoded.');
    throw new ImageDecodeError('corrupt', 'The image data is corrupt or truncated.');
  }
}

/** A short, safe description of non-image data for the error message. */
function describe(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1').trimStart().toLowerCase();
  if (bytes.length === 0) return 'empty';
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'SVG';
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return 'HTML';
  if (head.startsWith('{') || head.startsWith('[')) return 'JSON or text';
  if (bytes.subarray(4, 12).every((b, i) => b === 'ftypavif'.charCodeAt(i))) return 'AVIF';
  if (Buffer.from(bytes.subarray(4, 8)).toString('latin1') === 'ftyp') return 'HEIC or another ISO media file';
  if (['II*\0', 'MM\0*'].includes(Buffer.from(bytes.subarray(0, 4)).toString('latin1'))) return 'TIFF';
  return 'unknown format';
}
