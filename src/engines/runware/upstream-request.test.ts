import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { InputImage } from '../spec/image-engine.ts';
import { buildInferenceTask, toDataUri } from './upstream-request.ts';
import { makeCall } from './test-support.ts';

const png = (bytes: number[]): InputImage => ({
  encoded: { bytes: Uint8Array.from(bytes), format: 'png', width: 400, height: 400 },
  pixels: { data: new Uint8Array(3), width: 1, height: 1, channels: 3 },
});

describe('buildInferenceTask', () => {
  test('an async, base64, cost-reporting task for the call', () => {
    const call = makeCall({ count: 3, firstSeed: 42, width: 1360, height: 768, output: { format: 'webp', quality: 80 } });
    const { task, expected, extensions } = buildInferenceTask(call, 'u-1', { sendSeed: true });
    assert.deepEqual(task, {
      taskType: 'imageInference',
      taskUUID: 'u-1',
      model: 'klingai:kling-image@o3',
      positivePrompt: call.prompt,
      width: 1360,
      height: 768,
      numberResults: 3,
      deliveryMethod: 'async',
      outputType: 'base64Data',
      outputFormat: 'WEBP',
      outputQuality: 80,
      includeCost: true,
      seed: 42,
    });
    assert.equal(expected, 3);
    assert.deepEqual(extensions, []);
    assert.equal('seed' in buildInferenceTask(call, 'u-2', { sendSeed: false }).task, false);
    assert.equal(buildInferenceTask(call, 'u-3', { sendSeed: true, outputType: 'URL' }).task.outputType, 'URL');
  });

  test('references as data URIs; elements and series passed through and named as extensions', () => {
    const call = makeCall({
      images: [{ index: 0, seed: 7, seriesIndex: 0 }, { index: 1, seed: 8, seriesIndex: 1 }],
      seriesAmount: 4,
      referenceImages: [png([1, 2, 3])],
      elements: [{ frontal: png([4]), views: [png([5])] }],
    });
    const { task, expected, extensions } = buildInferenceTask(call, 'u', { sendSeed: true });
    assert.deepEqual(task.inputs, {
      referenceImages: ['data:image/png;base64,AQID'],
      elements: [{ frontalImage: 'data:image/png;base64,BA==', referenceImages: ['data:image/png;base64,BQ=='] }],
    });
    assert.deepEqual(task.providerSettings, { klingai: { resultType: 'series', seriesAmount: 4 } });
    assert.equal(task.numberResults, 1);
    assert.equal(expected, 4, 'a series makes seriesAmount images');
    assert.equal(extensions.length, 2);
    assert.equal(toDataUri({ bytes: Uint8Array.from([255]), format: 'jpg', width: 1, height: 1 }), 'data:image/jpeg;base64,/w==');
  });
});
