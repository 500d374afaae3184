import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { makeBmp24, makeBombPng, makeImage, pixelAt } from '../../test/fixtures/images.ts';
import { decodeInputImage, ImageDecodeError, normalizeUploadImage, sniffImageFormat } from './decode-input.ts';

function rejectsWith(problem: string, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ImageDecodeError, `expected ImageDecodeError, got ${String(error)}`);
    assert.equal(error.problem, problem);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

describe('decodeInputImage', () => {
  for (const format of ['jpg', 'png', 'webp'] as const) {
    it(`accepts ${format} and keeps its bytes`, async () => {
      const bytes = await makeImage(600, 400, format);
      const image = await decodeInputImage(bytes);
      assert.equal(image.encoded.format, format);
      assert.equal(image.encoded.bytes, bytes);
      assert.deepEqual([image.encoded.width, image.encoded.height], [600, 400]);
      assert.deepEqual([image.pixels.width, image.pixels.height, image.pixels.channels], [600, 400, 3]);
      assert.equal(image.pixels.data.length, 600 * 400 * 3);
    });
  }

  it('scales pixels to a long side of 1024 but keeps the encoded image whole', async () => {
    const image = await decodeInputImage(await makeImage(2048, 1024, 'png'));
    assert.deepEqual([image.pixels.width, image.pixels.height], [1024, 512]);
    assert.deepEqual([image.encoded.width, image.encoded.height], [2048, 1024]);
  });

  it('applies EXIF orientation to both encoded and pixels', async () => {
    // Stored 600×400 with orientation 6 (rotate 90° clockwise to display): shown 400×600.
    const bytes = await makeImage(600, 400, 'jpg', { orientation: 6 });
    const image = await decodeInputImage(bytes);
    assert.deepEqual([image.pixels.width, image.pixels.height], [400, 600]);
    assert.deepEqual([image.encoded.width, image.encoded.height], [400, 600]);
    assert.equal(image.encoded.format, 'jpg');
    const meta = await sharp(image.encoded.bytes).metadata();
    assert.deepEqual([meta.width, meta.height, meta.orientation ?? 1], [400, 600, 1]);
    // The red marker was top-left; after a clockwise quarter turn it is top-right.
    const [r, g, b] = pixelAt(image.pixels, 400 - 10, 10);
    assert.ok(r > 200 && g < 60 && b < 60, `expected red at top-right, got ${[r, g, b]}`);
    const [r2, , b2] = pixelAt(image.pixels, 10, 10);
    assert.ok(r2 < 60 && b2 > 200, `expected blue at top-left, got ${[r2, b2]}`);
  });

  it('flattens alpha onto white in pixels and keeps it in the encoded PNG', async () => {
    const image = await decodeInputImage(await makeImage(400, 400, 'png', { alpha: true }));
    assert.equal(image.pixels.channels, 3);
    const [r, g, b] = pixelAt(image.pixels, 399, 399);
    assert.ok(Math.abs(r - 128) < 4 && Math.abs(g - 128) < 4 && b === 255, `got ${[r, g, b]}`);
    assert.equal((await sharp(image.encoded.bytes).metadata()).hasAlpha, true);
  });

  it('refuses a 200×200 image', async () => {
    await assert.rejects(decodeInputImage(await makeImage(200, 200, 'png')), rejectsWith('tooSmall', /200×200.*300 px/));
  });

  it('refuses an aspect ratio of 3:1, accepts 2.5:1', async () => {
    await assert.rejects(decodeInputImage(await makeImage(900, 300, 'png')), rejectsWith('badAspect', /1:2\.5 and 2\.5:1/));
    await decodeInputImage(await makeImage(750, 300, 'png'));
  });

  it('refuses a decompression bomb from its header, quickly', async () => {
    const started = performance.now();
    await assert.rejects(decodeInputImage(makeBombPng()), rejectsWith('tooManyPixels', /30000×30000/));
    assert.ok(performance.now() - started < 1000);
  });

  it('refuses GIF and BMP unless legacy formats are accepted', async () => {
    const gif = await makeImage(400, 400, 'gif');
    await assert.rejects(decodeInputImage(gif), rejectsWith('unsupportedFormat', /GIF/));
    await assert.rejects(decodeInputImage(makeBmp24(400, 400)), rejectsWith('unsupportedFormat', /BMP/));
    const converted = await decodeInputImage(gif, { acceptLegacyFormats: true });
    assert.equal(converted.encoded.format, 'png');
  });

  it('names what non-image data looks like', async () => {
    const html = Buffer.from('<!DOCTYPE html><html><body>nope</body></html>');
    await assert.rejects(decodeInputImage(html), rejectsWith('unsupportedFormat', /HTML/));
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"/>');
    await assert.rejects(decodeInputImage(svg), rejectsWith('unsupportedFormat', /SVG/));
    await assert.rejects(decodeInputImage(new Uint8Array()), rejectsWith('unsupportedFormat', /empty/));
  });

  it('refuses truncated data', async () => {
    const png = await makeImage(400, 400, 'png');
    await assert.rejects(decodeInputImage(png.subarray(0, 60)), rejectsWith('corrupt'));
  });
});

describe('normalizeUploadImage', () => {
  it('caps the long side at 2048 and keeps the format', async () => {
    const stored = await normalizeUploadImage(await makeImage(3000, 1500, 'jpg'));
    assert.deepEqual([stored.format, stored.width, stored.height], ['jpg', 2048, 1024]);
    const meta = await sharp(stored.bytes).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 2048, 1024]);
  });

  it('keeps small images at their size, oriented', async () => {
    const stored = await normalizeUploadImage(await makeImage(300, 200, 'jpg', { orientation: 6 }));
    assert.deepEqual([stored.format, stored.width, stored.height], ['jpg', 200, 300]);
    assert.equal((await sharp(stored.bytes).metadata()).orientation ?? 1, 1);
  });

  it('converts BMP and GIF to PNG', async () => {
    const fromBmp = await normalizeUploadImage(makeBmp24(401, 300));
    assert.deepEqual([fromBmp.format, fromBmp.width, fromBmp.height], ['png', 401, 300]);
    const { data, info } = await sharp(fromBmp.bytes).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual(pixelAt({ data, width: info.width, channels: info.channels }, 5, 5), [255, 0, 0]);
    assert.deepEqual(pixelAt({ data, width: info.width, channels: info.channels }, 300, 250), [0, 255, 0]);
    const fromGif = await normalizeUploadImage(await makeImage(500, 400, 'gif'));
    assert.deepEqual([fromGif.format, fromGif.width, fromGif.height], ['png', 500, 400]);
  });

  it('refuses a bomb and non-images', async () => {
    await assert.rejects(normalizeUploadImage(makeBombPng()), rejectsWith('tooManyPixels'));
    await assert.rejects(normalizeUploadImage(Buffer.from('hello')), rejectsWith('unsupportedFormat'));
  });
});

describe('sniffImageFormat', () => {
  it('reads magic bytes, not names', async () => {
    assert.equal(sniffImageFormat(await makeImage(10, 10, 'webp')), 'webp');
    assert.equal(sniffImageFormat(makeBmp24(2, 2)), 'bmp');
    assert.equal(sniffImageFormat(Buffer.from('GIF89a')), 'gif');
    assert.equal(sniffImageFormat(Buffer.from('RIFF....WAVE')), undefined);
  });
});
