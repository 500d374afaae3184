import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { toModelInput } from './model-input.ts';
import { MODEL_INPUT_SIZE } from './safety-protocol.ts';
import { syntheticLandscape } from './synthetic-landscape.ts';

const inputBytes = MODEL_INPUT_SIZE * MODEL_INPUT_SIZE * 3;

test('raw RGB, raw RGBA, greyscale PNG and an EncodedImage all become 224×224 RGB', async () => {
  const grey = await sharp({ create: { width: 300, height: 100, channels: 3, background: '#808080' } }).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(grey).metadata()).channels, 1);
  const webp = await sharp({ create: { width: 50, height: 70, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).webp({ lossless: true }).toBuffer();
  const inputs = [
    syntheticLandscape(333, 111, 1),
    syntheticLandscape(120, 360, 2, 4),
    new Uint8Array(grey),
    { bytes: new Uint8Array(webp), format: 'webp', width: 50, height: 70 } as const,
  ];
  const outputs = await Promise.all(inputs.map((image) => toModelInput(image)));
  for (const pixels of outputs) assert.equal(pixels.length, inputBytes);
  assert.ok(outputs[2]!.every((value) => Math.abs(value - 128) <= 1), 'grey stays grey');
  assert.ok(outputs[3]!.every((value) => value === 255), 'transparency is flattened onto white');
});

test('a RawImage whose buffer does not match its size is refused', async () => {
  await assert.rejects(toModelInput({ data: new Uint8Array(11), width: 2, height: 2, channels: 3 }), /needs 12 bytes/);
});

test('bytes that are not an image are refused', async () => {
  await assert.rejects(toModelInput(new Uint8Array([1, 2, 3, 4])));
});
