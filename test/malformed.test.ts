import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { RawWsClient } from './helpers/ws-client.ts';

interface Case {
  readonly name: string;
  readonly task: Record<string, unknown>;
  readonly code: string;
  readonly parameter?: string | string[];
}

const O3 = 'klingai:kling-image@o3';
const base = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: O3,
  positivePrompt: 'a quiet harbour',
  width: 1024,
  height: 1024,
  ...extra,
});
const without = (key: string): Record<string, unknown> => {
  const task = base();
  delete task[key];
  return task;
};

const CASES: Case[] = [
  { name: 'taskUUID not a UUID', task: base({ taskUUID: 'product-maestro-001' }), code: 'invalidTaskUUID', parameter: 'taskUUID' },
  { name: 'taskUUID a UUID v1', task: base({ taskUUID: 'a8098c1a-f86e-11da-bd1a-00112444be1e' }), code: 'invalidTaskUUID', parameter: 'taskUUID' },
  { name: 'taskUUID a number', task: base({ taskUUID: 42 }), code: 'invalidTaskUUID', parameter: 'taskUUID' },
  { name: 'taskUUID missing', task: without('taskUUID'), code: 'invalidTaskUUID', parameter: 'taskUUID' },
  { name: 'unknown taskType', task: base({ taskType: 'videoInference' }), code: 'unsupportedTaskType', parameter: 'taskType' },
  { name: 'taskType a number', task: base({ taskType: 7 }), code: 'unsupportedTaskType', parameter: 'taskType' },
  { name: 'model missing', task: without('model'), code: 'invalidModel', parameter: 'model' },
  { name: 'model unknown', task: base({ model: 'civitai:1@1' }), code: 'invalidModel', parameter: 'model' },
  { name: 'model an object', task: base({ model: { id: O3 } }), code: 'invalidModel', parameter: 'model' },
  { name: 'prompt missing', task: without('positivePrompt'), code: 'invalidPositivePrompt', parameter: 'positivePrompt' },
  { name: 'prompt empty', task: base({ positivePrompt: '' }), code: 'invalidPositivePrompt', parameter: 'positivePrompt' },
  { name: 'prompt blank', task: base({ positivePrompt: '   ' }), code: 'invalidPositivePrompt', parameter: 'positivePrompt' },
  { name: 'prompt 2501 chars', task: base({ positivePrompt: 'b'.repeat(2501) }), code: 'invalidPositivePrompt', parameter: 'positivePrompt' },
  { name: 'prompt an array', task: base({ positivePrompt: ['a'] }), code: 'invalidPositivePrompt', parameter: 'positivePrompt' },
  { name: '2560×1440', task: base({ width: 2560, height: 1440 }), code: 'unsupportedDimensions', parameter: ['width', 'height'] },
  { name: '512×512', task: base({ width: 512, height: 512 }), code: 'unsupportedDimensions', parameter: ['width', 'height'] },
  { name: 'swapped 4K pair', task: base({ width: 2688, height: 6272 }), code: 'unsupportedDimensions', parameter: ['width', 'height'] },
  { name: 'width alone', task: base({ height: undefined }), code: 'unsupportedDimensions', parameter: ['width', 'height'] },
  { name: 'width a string', task: base({ width: '1024' }), code: 'invalidWidth', parameter: 'width' },
  { name: 'height fractional', task: base({ height: 1024.5 }), code: 'invalidHeight', parameter: 'height' },
  { name: 'width negative', task: base({ width: -1024 }), code: 'invalidWidth', parameter: 'width' },
  { name: 'numberResults 0', task: base({ numberResults: 0 }), code: 'invalidNumberResults', parameter: 'numberResults' },
  { name: 'numberResults 21', task: base({ numberResults: 21 }), code: 'invalidNumberResults', parameter: 'numberResults' },
  { name: 'numberResults a string', task: base({ numberResults: '2' }), code: 'invalidNumberResults', parameter: 'numberResults' },
  { name: 'outputType unknown', task: base({ outputType: 'file' }), code: 'invalidOutputType', parameter: 'outputType' },
  { name: 'outputFormat GIF', task: base({ outputFormat: 'GIF' }), code: 'invalidOutputFormat', parameter: 'outputFormat' },
  { name: 'outputFormat null', task: base({ outputFormat: null }), code: 'invalidOutputFormat', parameter: 'outputFormat' },
  { name: 'outputQuality 19', task: base({ outputQuality: 19 }), code: 'invalidOutputQuality', parameter: 'outputQuality' },
  { name: 'outputQuality 100', task: base({ outputQuality: 100 }), code: 'invalidOutputQuality', parameter: 'outputQuality' },
  { name: 'deliveryMethod stream', task: base({ deliveryMethod: 'stream' }), code: 'invalidDeliveryMethod', parameter: 'deliveryMethod' },
  { name: 'ttl 59', task: base({ ttl: 59 }), code: 'invalidTtl', parameter: 'ttl' },
  { name: 'ttl above 30 days', task: base({ ttl: 2_592_001 }), code: 'invalidTtl', parameter: 'ttl' },
  { name: 'includeCost a string', task: base({ includeCost: 'yes' }), code: 'invalidIncludeCost', parameter: 'includeCost' },
  { name: 'webhookURL ftp', task: base({ webhookURL: 'ftp://example.com/hook' }), code: 'invalidWebhookURL', parameter: 'webhookURL' },
  { name: 'webhookURL not a URL', task: base({ webhookURL: 'not a url' }), code: 'invalidWebhookURL', parameter: 'webhookURL' },
  { name: 'uploadEndpoint a number', task: base({ uploadEndpoint: 12 }), code: 'invalidUploadEndpoint', parameter: 'uploadEndpoint' },
  { name: 'safety not an object', task: base({ safety: 'fast' }), code: 'invalidSafety', parameter: 'safety' },
  { name: 'safety.mode full', task: base({ safety: { mode: 'full' } }), code: 'invalidSafety', parameter: 'safety.mode' },
  { name: 'safety.checkContent a string', task: base({ safety: { checkContent: 'true' } }), code: 'invalidSafety', parameter: 'safety.checkContent' },
  { name: 'safety unknown key', task: base({ safety: { level: 3 } }), code: 'unsupportedParameter', parameter: 'safety.level' },
  { name: 'checkNSFW a number', task: base({ checkNSFW: 1 }), code: 'invalidSafety', parameter: 'checkNSFW' },
  { name: 'seed 0', task: base({ seed: 0 }), code: 'invalidSeed', parameter: 'seed' },
  { name: 'seed too large', task: base({ seed: 2 ** 31 }), code: 'invalidSeed', parameter: 'seed' },
  { name: 'unknown field', task: base({ lora: [] }), code: 'unsupportedParameter', parameter: 'lora' },
  { name: 'unknown nested garbage', task: base({ __proto__x: { a: [{ b: null }] } }), code: 'unsupportedParameter', parameter: '__proto__x' },
  { name: 'inputs not an object', task: base({ inputs: [] }), code: 'invalidParameter', parameter: 'inputs' },
  { name: 'inputs unknown key', task: base({ inputs: { masks: [] } }), code: 'unsupportedParameter', parameter: 'inputs.masks' },
  { name: 'referenceImages empty', task: base({ inputs: { referenceImages: [] } }), code: 'invalidReferenceImage', parameter: 'inputs.referenceImages' },
  { name: '11 references', task: base({ inputs: { referenceImages: Array(11).fill('aGVsbG8=') } }), code: 'invalidReferenceImage', parameter: 'inputs.referenceImages' },
  { name: 'reference a number', task: base({ inputs: { referenceImages: ['aGVsbG8=', 5] } }), code: 'invalidReferenceImage', parameter: 'inputs.referenceImages[1]' },
  { name: 'reference alias and inputs both', task: base({ referenceImages: ['x'], inputs: { referenceImages: ['y'] } }), code: 'invalidParameter', parameter: ['referenceImages', 'inputs.referenceImages'] },
  { name: 'elements 4', task: base({ inputs: { elements: Array(4).fill({ frontalImage: 'x' }) } }), code: 'invalidElements', parameter: 'inputs.elements' },
  { name: 'element without frontal', task: base({ inputs: { elements: [{ referenceImages: [] }] } }), code: 'invalidElements', parameter: 'inputs.elements[0].frontalImage' },
  { name: 'series with numberResults 2', task: base({ numberResults: 2, providerSettings: { klingai: { resultType: 'series' } } }), code: 'unsupportedParameter', parameter: 'numberResults' },
  { name: 'seriesAmount 10', task: base({ providerSettings: { klingai: { resultType: 'series', seriesAmount: 10 } } }), code: 'invalidProviderSettings', parameter: 'providerSettings.klingai.seriesAmount' },
  { name: 'resultType bogus', task: base({ providerSettings: { klingai: { resultType: 'album' } } }), code: 'invalidProviderSettings', parameter: 'providerSettings.klingai.resultType' },
  { name: 'providerSettings other provider', task: base({ providerSettings: { openai: {} } }), code: 'unsupportedParameter', parameter: 'providerSettings.openai' },
  { name: 'imageUpload without image', task: { taskType: 'imageUpload', taskUUID: randomUUID() }, code: 'invalidImage', parameter: 'image' },
  { name: 'imageUpload image a number', task: { taskType: 'imageUpload', taskUUID: randomUUID(), image: 3 }, code: 'invalidImage', parameter: 'image' },
  { name: 'getResponse bad uuid', task: { taskType: 'getResponse', taskUUID: 'abc' }, code: 'invalidTaskUUID', parameter: 'taskUUID' },
  { name: 'getResponse extra field', task: { taskType: 'getResponse', taskUUID: randomUUID(), wait: true }, code: 'unsupportedParameter', parameter: 'wait' },
];

function expectCase(error: any, c: Case): void {
  assert.equal(error.code, c.code, `${c.name}: code`);
  assert.deepEqual(error.parameter, c.parameter, `${c.name}: parameter`);
  assert.equal(typeof error.message, 'string');
  if (typeof c.task.taskUUID === 'string') assert.equal(error.taskUUID, c.task.taskUUID, `${c.name}: taskUUID`);
}

describe('malformed input', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test(`${CASES.length} malformed tasks over REST get 4xx with the right code and parameter`, async () => {
    assert.ok(CASES.length >= 40);
    for (const c of CASES) {
      const response = await post(server, [c.task]);
      assert.ok(response.status >= 400 && response.status < 500, `${c.name}: status ${response.status}`);
      assert.deepEqual(response.body.data, []);
      expectCase(response.body.errors[0], c);
    }
  });

  test(`${CASES.length} malformed tasks over WebSocket get an error frame with the right code and parameter`, async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    await client.authenticate(TEST_KEY);
    for (const c of CASES) {
      client.send([c.task]);
      const frame = await client.next((f) => Array.isArray(f.errors));
      expectCase(frame.errors[0], c);
    }
    client.close();
  });

  test('malformed bodies get 4xx errors and the server keeps serving', async () => {
    const bodies: [string, string, number][] = [
      ['not json', '{"taskType":', 400],
      ['a bare object', JSON.stringify(base()), 400],
      ['a string', '"hello"', 400],
      ['an empty array', '[]', 400],
      ['null', 'null', 400],
      ['an array of numbers', '[1,2,3]', 400],
      ['deep nesting', `${'['.repeat(5000)}${']'.repeat(5000)}`, 400],
    ];
    for (const [name, body, status] of bodies) {
      const response = await post(server, body, { raw: true });
      assert.equal(response.status, status, name);
      assert.equal(typeof response.body.errors[0].code, 'string', name);
    }
    const nonJsonType = await post(server, 'hello', { raw: true, contentType: 'text/plain' });
    assert.equal(nonJsonType.status, 400);
    const ping = await post(server, [{ taskType: 'ping', ping: true }]);
    assert.deepEqual(ping.body, { data: [{ taskType: 'ping', pong: true }] });
  });

  test('a body over the size limit gets 413 requestTooLarge', async () => {
    const small = await startTestServer({ KILN_MAX_BODY_MB: '1' });
    try {
      const response = await post(small, [base({ positivePrompt: 'x'.repeat(2 * 1024 * 1024) })]);
      assert.equal(response.status, 413);
      assert.equal(response.body.errors[0].code, 'requestTooLarge');
      const ping = await post(small, [{ taskType: 'ping', ping: true }]);
      assert.equal(ping.status, 200);
    } finally {
      await small.close();
    }
  });

  test('malformed WebSocket frames get an error frame and the socket stays usable', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    for (const text of ['garbage', '{}', '[]', '[null]']) {
      client.send(text);
      const frame = await client.next((f) => Array.isArray(f.errors));
      assert.ok(['invalidRequestBody'].includes(frame.errors[0].code), text);
    }
    const auth = await client.authenticate(TEST_KEY);
    assert.equal(auth.data[0].taskType, 'authentication');
    client.close();
  });
});
