import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { makeBombPng, makeImage } from './fixtures/images.ts';
import { seedRequest } from './fixtures/seed-examples.ts';
import { redirectTo, serveBytes, slowDrip, startLoopbackServer, type LoopbackServer } from './fixtures/loopback-server.ts';
import { post, startTestServer, type TestServer } from './helpers/kiln-server.ts';

const task = (references: unknown[], extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a garden that borrows the palette of <<<image_1>>>',
  width: 256,
  height: 256,
  inputs: { referenceImages: references },
  ...extra,
});

describe('reference images over the API', () => {
  let server: TestServer;
  let images: LoopbackServer;
  let png: Buffer;

  before(async () => {
    server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' });
    png = await makeImage(480, 360, 'png');
    images = await startLoopbackServer({
      '/good.jpg': serveBytes(await makeImage(640, 400, 'jpg'), 'image/jpeg'),
      '/good.webp': serveBytes(await makeImage(400, 640, 'webp'), 'image/webp'),
      '/hop1': redirectTo('/hop2'),
      '/hop2': redirectTo('/hop3'),
      '/hop3': redirectTo('/good.jpg'),
      '/r1': redirectTo('/r2'),
      '/r2': redirectTo('/r3'),
      '/r3': redirectTo('/r4'),
      '/r4': redirectTo('/good.jpg'),
      '/page': serveBytes(Buffer.from('<html>hello</html>'), 'text/html'),
      '/bomb.png': serveBytes(makeBombPng(), 'image/png'),
      '/tiny.png': serveBytes(await makeImage(200, 200, 'png'), 'image/png'),
      '/slow': slowDrip(500),
    });
  });
  after(async () => {
    await images.close();
    await server.close();
  });

  test('every form of reference in one task: upload UUID, generated UUID, URL, data URI, base64', async () => {
    const upload = await post(server, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: `data:image/png;base64,${png.toString('base64')}` }]);
    const uploadedUUID = upload.body.data[0].imageUUID;
    const generated = await post(server, [
      { taskType: 'imageInference', taskUUID: randomUUID(), model: 'kiln:studio@1', positivePrompt: 'hills', width: 512, height: 384 },
    ]);
    const generatedUUID = generated.body.data[0].imageUUID;
    const url = images.url('/good.jpg');
    const references = [uploadedUUID, generatedUUID, url, `data:image/png;base64,${png.toString('base64')}`, png.toString('base64'), url, images.url('/hop1'), images.url('/good.webp')];
    const response = await post(server, [task(references)]);
    assert.equal(response.status, 200, JSON.stringify(response.body.errors));
    assert.equal(response.body.data.length, 1);
    assert.equal(images.hits('/good.jpg'), 2, 'the same URL twice is fetched once (the redirect chain fetches it again)');
  });

  test('no size with references: the 1K size closest to the first reference', async () => {
    const portrait = await makeImage(400, 640, 'png');
    const response = await post(server, [
      { ...task([portrait.toString('base64')]), model: 'klingai:kling-image@o3', width: undefined, height: undefined },
    ]);
    const meta = await sharp(Buffer.from(await (await fetch(response.body.data[0].imageURL)).arrayBuffer())).metadata();
    assert.deepEqual([meta.width, meta.height], [832, 1248]);
    const none = await post(server, [{ ...task([]), inputs: undefined, model: 'klingai:kling-image@o3', width: undefined, height: undefined }]);
    const square = await sharp(Buffer.from(await (await fetch(none.body.data[0].imageURL)).arrayBuffer())).metadata();
    assert.deepEqual([square.width, square.height], [1024, 1024]);
  });

  test('each bad reference fails its task with the right code and parameter', async () => {
    const cases: [string, unknown[], string, string][] = [
      ['404', [png.toString('base64'), images.url('/missing.png')], 'imageFetchFailed', 'inputs.referenceImages[1]'],
      ['4 redirects', [images.url('/r1')], 'imageFetchFailed', 'inputs.referenceImages[0]'],
      ['html body', [images.url('/page')], 'invalidReferenceImage', 'inputs.referenceImages[0]'],
      ['bomb', [images.url('/bomb.png')], 'invalidReferenceImage', 'inputs.referenceImages[0]'],
      ['200×200', [png.toString('base64'), images.url('/tiny.png')], 'invalidReferenceImage', 'inputs.referenceImages[1]'],
      ['malformed data URI', ['data:image/png;base64,@@@@'], 'invalidReferenceImage', 'inputs.referenceImages[0]'],
      ['malformed base64', ['not base64 at all!'], 'invalidReferenceImage', 'inputs.referenceImages[0]'],
      ['unknown UUID', [randomUUID()], 'invalidReferenceImage', 'inputs.referenceImages[0]'],
      ['ftp URL', ['ftp://127.0.0.1/x.png'], 'invalidReferenceImage', 'inputs.referenceImages[0]'],
    ];
    for (const [name, references, code, parameter] of cases) {
      const t = task(references);
      const response = await post(server, [t]);
      assert.equal(response.status, 400, name);
      assert.equal(response.body.errors[0].code, code, `${name}: ${response.body.errors[0].message}`);
      assert.equal(response.body.errors[0].parameter, parameter, name);
      assert.equal(response.body.errors[0].taskUUID, t.taskUUID, name);
    }
  });

  test('11 references are refused at validation', async () => {
    const response = await post(server, [task(Array(11).fill(png.toString('base64')))]);
    assert.equal(response.body.errors[0].code, 'invalidReferenceImage');
    assert.equal(response.body.errors[0].parameter, 'inputs.referenceImages');
  });

  test('loopback URLs are refused unless KILN_ALLOW_PRIVATE_URLS is set', async () => {
    const strict = await startTestServer();
    try {
      const response = await post(strict, [task([images.url('/good.jpg')])]);
      assert.equal(response.body.errors[0].code, 'invalidReferenceImage');
      assert.match(response.body.errors[0].message, /loopback/);
      assert.equal(images.hits('/good.jpg') >= 1, true);
    } finally {
      await strict.close();
    }
  });

  test("the seed file's third example (unreachable host) fails fast with a clear error", async () => {
    const example = seedRequest(2);
    assert.equal(example.taskUUID, '70090088-46f9-418e-b258-2540c2381bdf');
    const started = performance.now();
    const response = await post(server, [example]);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].code, 'imageFetchFailed');
    assert.match(response.body.errors[0].parameter, /^inputs\.referenceImages\[\d\]$/);
    assert.equal(response.body.errors[0].taskUUID, example.taskUUID);
    assert.ok(seconds < 25, `took ${seconds.toFixed(1)} s`);
  });

  test('a slow-drip body times out without holding other tasks', async () => {
    const fastServer = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true', KILN_FETCH_TOTAL_TIMEOUT_MS: '1000' });
    try {
      const slow = post(fastServer, [task([images.url('/slow')])]);
      const quick = await post(fastServer, [task([png.toString('base64')])]);
      assert.equal(quick.status, 200);
      const response = await slow;
      assert.equal(response.body.errors[0].code, 'imageFetchFailed');
      assert.match(response.body.errors[0].message, /within 1000 ms/);
    } finally {
      await fastServer.close();
    }
  });

  test('imageUpload with a taskUUID in use: a conflict, unless it is the same key sending its upload again', async () => {
    const image = `data:image/png;base64,${(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#2a9d8f' } }).png().toBuffer()).toString('base64')}`;
    const taskUUID = randomUUID();
    const first = await post(server, [{ taskType: 'imageUpload', taskUUID, image }]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    // A retry whose first answer was lost gets the same image.
    const again = await post(server, [{ taskType: 'imageUpload', taskUUID: taskUUID.toUpperCase(), image }]);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.data[0].imageUUID, first.body.data[0].imageUUID);
    // Another image under the same taskUUID is a conflict, never the old image's answer.
    const otherImage = `data:image/png;base64,${(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#e76f51' } }).png().toBuffer()).toString('base64')}`;
    const changed = await post(server, [{ taskType: 'imageUpload', taskUUID, image: otherImage }]);
    assert.equal(changed.status, 400);
    assert.equal(changed.body.errors[0].code, 'conflictTaskUUID');
    // Two sends of one upload at once: one image, answered to both.
    const racing = randomUUID();
    const both = await Promise.all([1, 2].map(() => post(server, [{ taskType: 'imageUpload', taskUUID: racing, image }])));
    assert.deepEqual(both.map((r) => r.status), [200, 200], JSON.stringify(both.map((r) => r.body)));
    assert.equal(both[0]!.body.data[0].imageUUID, both[1]!.body.data[0].imageUUID);
    // An inference task's taskUUID is in use.
    const inference = { taskType: 'imageInference', taskUUID: randomUUID(), model: 'kiln:studio@1', positivePrompt: 'a red kite', width: 128, height: 128 };
    assert.equal((await post(server, [inference])).status, 200);
    const clash = await post(server, [{ taskType: 'imageUpload', taskUUID: inference.taskUUID, image }]);
    assert.equal(clash.status, 400);
    assert.equal(clash.body.errors[0].code, 'conflictTaskUUID');
    assert.equal(clash.body.errors[0].taskUUID, inference.taskUUID);
  });

  test('imageUpload accepts GIF and BMP, normalises, and caps the long side at 2048', async () => {
    const big = await sharp({ create: { width: 3000, height: 1500, channels: 3, background: '#e76f51' } }).jpeg().toBuffer();
    const gif = await makeImage(320, 320, 'gif');
    for (const [image, width, height] of [
      [big, 2048, 1024],
      [gif, 320, 320],
    ] as const) {
      const response = await post(server, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: image.toString('base64') }]);
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const meta = await sharp(Buffer.from(await (await fetch(response.body.data[0].imageURL)).arrayBuffer())).metadata();
      assert.deepEqual([meta.width, meta.height], [width, height]);
    }
    const bad = await post(server, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: 'data:image/png;base64,AAAA' }]);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errors[0].parameter, 'image');
  });
});
