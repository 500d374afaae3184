import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { RunwareServer } from '@runware/sdk-js';
import sharp from 'sharp';
import { startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';

const O3 = 'klingai:kling-image@o3';
const DEV = 'kiln:studio@1';

describe('@runware/sdk-js over WebSocket', () => {
  let server: TestServer;
  let runware: InstanceType<typeof RunwareServer>;

  before(async () => {
    server = await startTestServer();
    runware = new RunwareServer({ apiKey: TEST_KEY, url: server.wsUrl, shouldReconnect: false, timeoutDuration: 60_000 });
    await runware.ensureConnection();
  });
  after(async () => {
    await runware.disconnect();
    await server.close();
  });

  test('sync numberResults 2 gives two results with distinct imageUUID and seed', async () => {
    const images = await runware.requestImages({
      model: O3,
      positivePrompt: 'a lighthouse on a jade sea at dusk',
      width: 1024,
      height: 1024,
      numberResults: 2,
      includeCost: true,
    });
    assert.ok(images);
    assert.equal(images.length, 2);
    const [a, b] = images as any[];
    assert.notEqual(a.imageUUID, b.imageUUID);
    assert.notEqual(a.seed, b.seed);
    for (const image of images as any[]) {
      assert.equal(image.taskType, 'imageInference');
      assert.equal(image.cost, 0.028);
      assert.match(image.imageURL, /^http:\/\/.+\/image\/[0-9a-f-]{36}\.jpg$/);
      const response = await fetch(image.imageURL);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'image/jpeg');
      const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 1024, 1024]);
    }
  });

  test('dataURI output decodes to the requested format and exact size', async () => {
    const [image] = (await runware.requestImages({
      model: DEV,
      positivePrompt: 'a coral desert under stars',
      width: 320,
      height: 192,
      outputType: 'dataURI',
      outputFormat: 'PNG',
    })) as any[];
    assert.match(image.imageDataURI, /^data:image\/png;base64,/);
    const bytes = Buffer.from(image.imageDataURI.split(',')[1], 'base64');
    const meta = await sharp(bytes).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 320, 192]);
    assert.equal(image.imageURL, undefined);
  });

  test('base64Data output decodes to the requested format and exact size', async () => {
    const [image] = (await runware.requestImages({
      model: DEV,
      positivePrompt: 'snowy mountains, silver and cyan',
      width: 256,
      height: 384,
      outputType: 'base64Data',
      outputFormat: 'WEBP',
      outputQuality: 80,
    })) as any[];
    const meta = await sharp(Buffer.from(image.imageBase64Data, 'base64')).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 256, 384]);
    assert.equal(typeof image.seed, 'number');
  });

  test('imageUpload stores the image and its UUID works as a reference', async () => {
    const png = await sharp({ create: { width: 400, height: 320, channels: 3, background: '#2a9d8f' } }).png().toBuffer();
    const uploaded = (await runware.imageUpload({ image: `data:image/png;base64,${png.toString('base64')}` })) as any;
    assert.match(uploaded.imageUUID, /^[0-9a-f-]{36}$/);
    const served = await fetch(uploaded.imageURL);
    assert.equal(served.status, 200);
    const [image] = (await runware.requestImages({
      model: DEV,
      positivePrompt: 'a garden in the style of <<<image_1>>>',
      width: 256,
      height: 256,
      referenceImages: [uploaded.imageUUID],
    } as any)) as any[];
    assert.ok(image.imageUUID);
  });

  test('a prompt of 2501 characters is rejected with invalidPositivePrompt', async () => {
    const taskUUID = randomUUID();
    await assert.rejects(
      runware.requestImages({ model: O3, positivePrompt: 'a'.repeat(2501), width: 1024, height: 1024, customTaskUUID: taskUUID } as any),
      (error: any) => {
        assert.equal(error.error.code, 'invalidPositivePrompt');
        assert.equal(error.error.parameter, 'positivePrompt');
        assert.equal(error.error.taskUUID, taskUUID);
        return true;
      },
    );
  });

  test('2560×1440 is rejected with unsupportedDimensions', async () => {
    await assert.rejects(
      runware.requestImages({ model: O3, positivePrompt: 'a city', width: 2560, height: 1440 }),
      (error: any) => {
        assert.equal(error.error.code, 'unsupportedDimensions');
        assert.deepEqual(error.error.parameter, ['width', 'height']);
        assert.match(error.error.message, /'2720x1536'/);
        return true;
      },
    );
  });

  test('an invalid key is rejected with invalidApiKey', async () => {
    await assert.rejects(
      RunwareServer.initialize({ apiKey: 'wrong-key', url: server.wsUrl, shouldReconnect: false }).then(async (client: any) => {
        await client.requestImages({ model: DEV, positivePrompt: 'x', width: 256, height: 256 });
      }),
      (error: any) => {
        assert.equal(error.error?.code ?? error.code, 'invalidApiKey');
        return true;
      },
    );
  });

  test('async delivery returns the ack, and getResponse returns the results', async () => {
    const taskUUID = randomUUID();
    const ack = (await runware.requestImages({
      model: DEV,
      positivePrompt: 'lanterns over a lake at night',
      width: 256,
      height: 256,
      numberResults: 2,
      deliveryMethod: 'async',
      customTaskUUID: taskUUID,
    } as any)) as any[];
    assert.deepEqual(ack, [{ taskType: 'imageInference', taskUUID }]);
    let items: any[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      items = await runware.getResponse({ taskUUID });
      if (items.filter((i) => i.status === 'success').length === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(items.filter((i) => i.status === 'success').length, 2);
    assert.equal(new Set(items.map((i) => i.imageUUID)).size, 2);
  });
});
