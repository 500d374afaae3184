import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { post, startTestServer, type TestServer } from './helpers/kiln-server.ts';

/** The Huffman table segments (DHT, 0xFFC4) of a baseline JPEG, each as its class/id byte, code counts and symbols. */
function huffmanTables(jpeg: Buffer): Buffer[] {
  const tables: Buffer[] = [];
  let at = 2;
  while (at + 4 <= jpeg.length && jpeg[at] === 0xff) {
    const marker = jpeg[at + 1]!;
    const length = jpeg.readUInt16BE(at + 2);
    if (marker === 0xc4) tables.push(jpeg.subarray(at + 4, at + 2 + length));
    if (marker === 0xda) break; // start of scan: the tables are all before it
    at += 2 + length;
  }
  return tables;
}

// JPEG's standard table for luminance DC differences (ITU T.81, Annex K.3): class 0, id 0, code counts, symbols 0…11.
const STANDARD_LUMA_DC = Buffer.from([0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

describe('KILN_JPEG_OPTIMIZE_CODING', () => {
  let optimised: TestServer;
  let standard: TestServer;
  before(async () => {
    [optimised, standard] = await Promise.all([startTestServer(), startTestServer({ KILN_JPEG_OPTIMIZE_CODING: 'false' })]);
  });
  after(() => Promise.all([optimised.close(), standard.close()]));

  test('standard Huffman tables give the same pixels in a larger file; the default computes tables per image', async () => {
    const task = {
      taskType: 'imageInference',
      model: 'kiln:studio@1',
      positivePrompt: 'harbor town with boats and gulls, golden hour',
      width: 1024,
      height: 768,
      seed: 4242,
      outputType: 'base64Data',
      outputFormat: 'JPG',
      outputQuality: 95,
    };
    const [a, b] = await Promise.all([post(optimised, [{ ...task, taskUUID: randomUUID() }]), post(standard, [{ ...task, taskUUID: randomUUID() }])]);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    const small = Buffer.from(a.body.data[0].imageBase64Data, 'base64');
    const large = Buffer.from(b.body.data[0].imageBase64Data, 'base64');
    assert.ok(large.length > small.length, `standard tables ${large.length} B, optimised ${small.length} B`);
    assert.ok(huffmanTables(large).some((table) => table.equals(STANDARD_LUMA_DC)), 'the standard luminance DC table is used');
    assert.ok(!huffmanTables(small).some((table) => table.equals(STANDARD_LUMA_DC)), 'the default computes its own tables');
    // Huffman coding is lossless: both decode to the same pixels.
    const [pixelsA, pixelsB] = await Promise.all([sharp(small).raw().toBuffer(), sharp(large).raw().toBuffer()]);
    assert.equal(pixelsA.length, 1024 * 768 * 3);
    assert.ok(pixelsA.equals(pixelsB), 'decoded pixels differ');
  });
});
