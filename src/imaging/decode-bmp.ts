/**
 * A minimal BMP decoder, because the sharp 0.35 prebuilt libvips has no BMP loader (only
 * ImageMagick would bring one). BMP reaches Kiln only through `imageUpload`, where it is
 * converted at once.
 *
 * Supported: Windows BMP with a BITMAPINFOHEADER or later (40, 52, 56, 108, 124 bytes),
 * uncompressed 1/4/8-bit paletted, 24-bit, and 32-bit (BI_RGB or BI_BITFIELDS with byte-aligned
 * masks), bottom-up or top-down. RLE and embedded JPEG/PNG are refused. The pixel count is
 * checked before anything is allocated.
 */

/** Decoded BMP pixels, 8 bits per channel. */
export interface BmpPixels {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 3 | 4;
}

/** Thrown for a BMP that is malformed or uses a feature this decoder does not read. */
export class BmpDecodeError extends Error {
  constructor(
    message: string,
    /** True when the file declares more pixels than allowed. */
    readonly tooManyPixels = false,
  ) {
    super(message);
    this.name = 'BmpDecodeError';
  }
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

/** Reads the declared size without decoding. */
export function readBmpSize(bytes: Uint8Array): { width: number; height: number } {
  const header = readHeader(bytes);
  return { width: header.width, height: header.height };
}

export function decodeBmp(bytes: Uint8Array, maxPixels: number): BmpPixels {
  const h = readHeader(bytes);
  if (h.width * h.height > maxPixels) {
    throw new BmpDecodeError(`The BMP declares ${h.width}×${h.height} pixels, more than allowed.`, true);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stride = Math.ceil((h.width * h.bitCount) / 32) * 4;
  if (h.dataOffset + stride * h.height > bytes.length) throw new BmpDecodeError('The BMP pixel data is truncated.');

  const palette = h.bitCount <= 8 ? readPalette(view, h) : undefined;
  const masks = h.bitCount === 32 ? readMasks(view, h) : undefined;
  const channels = masks && masks.alpha !== undefined ? 4 : 3;
  const out = new Uint8Array(h.width * h.height * channels);
  let hasVisibleAlpha = false;

  for (let row = 0; row < h.height; row++) {
    const source = h.dataOffset + stride * (h.topDown ? row : h.height - 1 - row);
    for (let x = 0; x < h.width; x++) {
      const o = (row * h.width + x) * channels;
      if (palette) {
        const perByte = 8 / h.bitCount;
        const byte = bytes[source + Math.floor(x / perByte)] ?? 0;
        const shift = 8 - h.bitCount * ((x % perByte) + 1);
        const index = (byte >> shift) & ((1 << h.bitCount) - 1);
        const entry = palette[index] ?? [0, 0, 0];
        out.set(entry, o);
      } else if (h.bitCount === 24) {
        const p = source + x * 3;
        out[o] = bytes[p + 2] ?? 0;
        out[o + 1] = bytes[p + 1] ?? 0;
        out[o + 2] = bytes[p] ?? 0;
      } else if (masks) {
        const value = view.getUint32(source + x * 4, true);
        out[o] = (value >>> masks.red) & 0xff;
        out[o + 1] = (value >>> masks.green) & 0xff;
        out[o + 2] = (value >>> masks.blue) & 0xff;
        if (masks.alpha !== undefined) {
          const alpha = (value >>> masks.alpha) & 0xff;
          out[o + 3] = alpha;
          if (alpha !== 0) hasVisibleAlpha = true;
        }
      }
    }
  }
  // Many writers leave the alpha byte of 32-bit BMPs at 0: treat an all-zero alpha as opaque.
  if (channels === 4 && !hasVisibleAlpha) {
    for (let i = 3; i < out.length; i += 4) out[i] = 255;
  }
  return { data: out, width: h.width, height: h.height, channels };
}

interface BmpHeader {
  dataOffset: number;
  headerSize: number;
  width: number;
  height: number;
  topDown: boolean;
  bitCount: number;
  compression: number;
  colorsUsed: number;
}

function readHeader(bytes: Uint8Array): BmpHeader {
  if (!isBmp(bytes) || bytes.length < 54) throw new BmpDecodeError('The BMP header is truncated.');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerSize = view.getUint32(14, true);
  if (![40, 52, 56, 108, 124].includes(headerSize)) throw new BmpDecodeError('This BMP variant is not supported.');
  const width = view.getInt32(18, true);
  const rawHeight = view.getInt32(22, true);
  const bitCount = view.getUint16(28, true);
  const compression = view.getUint32(30, true);
  const header: BmpHeader = {
    dataOffset: view.getUint32(10, true),
    headerSize,
    width,
    height: Math.abs(rawHeight),
    topDown: rawHeight < 0,
    bitCount,
    compression,
    colorsUsed: view.getUint32(46, true),
  };
  if (width <= 0 || rawHeight === 0) throw new BmpDecodeError('The BMP has no pixels.');
  if (![1, 4, 8, 24, 32].includes(bitCount)) throw new BmpDecodeError(`BMP with ${bitCount} bits per pixel is not supported.`);
  const fieldsOk = bitCount === 32 && (compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS);
  if (compression !== BI_RGB && !fieldsOk) throw new BmpDecodeError('Compressed BMP files are not supported.');
  return header;
}

function readPalette(view: DataView, h: BmpHeader): Array<[number, number, number]> {
  const count = h.colorsUsed || 1 << h.bitCount;
  const start = 14 + h.headerSize;
  if (count > 256 || start + count * 4 > h.dataOffset) throw new BmpDecodeError('The BMP palette is malformed.');
  const palette: Array<[number, number, number]> = [];
  for (let i = 0; i < count; i++) {
    const p = start + i * 4;
    palette.push([view.getUint8(p + 2), view.getUint8(p + 1), view.getUint8(p)]);
  }
  return palette;
}

/** Bit shifts of each channel in a 32-bit pixel. */
function readMasks(view: DataView, h: BmpHeader): { red: number; green: number; blue: number; alpha?: number } {
  if (h.compression === BI_RGB) return { red: 16, green: 8, blue: 0 };
  // Masks follow the 40-byte header (BI_BITFIELDS) or sit inside the V2+ header.
  const at = 14 + 40;
  const shiftOf = (mask: number): number => {
    const shift = Math.clz32(mask & -mask) ^ 31;
    if (mask >>> shift !== 0xff) throw new BmpDecodeError('BMP colour masks that are not 8 bits wide are not supported.');
    return shift;
  };
  const hasAlphaField = h.headerSize >= 56 || h.compression === BI_ALPHABITFIELDS;
  const alphaMask = hasAlphaField ? view.getUint32(at + 12, true) : 0;
  const masks = {
    red: shiftOf(view.getUint32(at, true)),
    green: shiftOf(view.getUint32(at + 4, true)),
    blue: shiftOf(view.getUint32(at + 8, true)),
  };
  return alphaMask === 0 ? masks : { ...masks, alpha: shiftOf(alphaMask) };
}
