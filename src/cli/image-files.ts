/**
 * Result images to files: the bytes of a result item, written under a temporary name and
 * renamed, so a killed command never leaves half a file under the final name; and the pixel
 * size read from the file header (the CLI does not load an image codec).
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** The bytes of a result item (`imageBase64Data`, `imageDataURI`, or a downloaded `imageURL`). */
export async function resultBytes(item: Record<string, unknown>): Promise<Buffer> {
  if (typeof item.imageBase64Data === 'string') return Buffer.from(item.imageBase64Data, 'base64');
  if (typeof item.imageDataURI === 'string') return Buffer.from(item.imageDataURI.slice(item.imageDataURI.indexOf(',') + 1), 'base64');
  if (typeof item.imageURL === 'string') {
    const response = await fetch(item.imageURL, { signal: AbortSignal.timeout(120_000) });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`downloading ${item.imageURL} answered HTTP ${response.status}`);
    }
    return Buffer.from(await response.arrayBuffer());
  }
  throw new Error('the result has no image data');
}

/** Writes `bytes` to `file` through a temporary file in the same folder and a rename. */
export async function writeFileAtomic(file: string, bytes: Uint8Array): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.part`);
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Width and height from a PNG, JPEG or WEBP header; undefined when it is none of them. */
export function imageSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (data.length >= 24 && data.readUInt32BE(0) === 0x89504e47) return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
  if (data.length >= 30 && data.toString('ascii', 0, 4) === 'RIFF' && data.toString('ascii', 8, 12) === 'WEBP') {
    const chunk = data.toString('ascii', 12, 16);
    if (chunk === 'VP8X') return { width: 1 + data.readUIntLE(24, 3), height: 1 + data.readUIntLE(27, 3) };
    if (chunk === 'VP8L') {
      const bits = data.readUInt32LE(21);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff) };
    }
    if (chunk === 'VP8 ') return { width: data.readUInt16LE(26) & 0x3fff, height: data.readUInt16LE(28) & 0x3fff };
    return undefined;
  }
  if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8) {
    let offset = 2;
    while (offset + 9 < data.length) {
      if (data[offset] !== 0xff) return undefined;
      const marker = data[offset + 1] as number;
      if (marker === 0xff) {
        offset++;
        continue;
      }
      const length = data.readUInt16BE(offset + 2);
      // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: data.readUInt16BE(offset + 5), width: data.readUInt16BE(offset + 7) };
      }
      offset += 2 + length;
    }
  }
  return undefined;
}
