import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { seedRequest } from './fixtures/seed-examples.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';


describe('REST /v1', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test("the seed file's first example answers one item whose URL serves a 2496×1664 JPEG", async () => {
    const task = seedRequest(0);
    assert.equal(task.taskUUID, '2fc506cb-77fc-45af-baa9-f121f04b4ff2');
    const response = await post(server, [task]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-kiln-engine'), 'studio');
    assert.equal(response.body.errors, undefined);
    assert.equal(response.body.data.length, 1);
    const item = response.body.data[0];
    assert.equal(item.taskType, 'imageInference');
    assert.equal(item.taskUUID, task.taskUUID);
    assert.equal(typeof item.seed, 'number');
    assert.equal(item.cost, undefined);
    const image = await fetch(item.imageURL);
    assert.equal(image.headers.get('content-type'), 'image/jpeg');
    const meta = await sharp(Buffer.from(await image.arrayBuffer())).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 2496, 1664]);
    // Resending the same task (a client's retry) answers the same image; nothing runs twice.
    const retry = await post(server, [task]);
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.deepEqual(retry.body.data, response.body.data);
    // Reusing the taskUUID for another task is a conflict.
    const again = await post(server, [{ ...task, positivePrompt: `${task.positivePrompt} (changed)` }]);
    assert.equal(again.status, 400);
    assert.equal(again.body.errors[0].code, 'conflictTaskUUID');
    assert.equal(again.body.errors[0].taskUUID, task.taskUUID);
    assert.deepEqual(again.body.data, []);
  });

  test('a reply of several MB (base64 PNGs, then getResponse and an error) is streamed whole and exact', async () => {
    const task = {
      taskType: 'imageInference',
      taskUUID: randomUUID(),
      model: 'kiln:studio@1',
      positivePrompt: 'a crimson lighthouse on emerald cliffs above a turquoise sea',
      width: 1024,
      height: 1024,
      numberResults: 3,
      outputType: 'base64Data',
      outputFormat: 'PNG',
    };
    const first = await post(server, [task]);
    assert.equal(first.status, 200, JSON.stringify(first.body.errors));
    const items = first.body.data;
    assert.equal(items.length, 3);
    for (const item of items) {
      const meta = await sharp(Buffer.from(item.imageBase64Data, 'base64')).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 1024, 1024]);
    }
    // A mixed reply over the streaming threshold: results read back, plus an error at the end.
    const response = await fetch(`${server.url}/v1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ taskType: 'getResponse', taskUUID: task.taskUUID }, { taskType: 'imageInference', taskUUID: 'nope' }]),
    });
    const text = Buffer.from(await response.arrayBuffer());
    assert.ok(text.length > 2 * 1024 * 1024, `${text.length} bytes`);
    assert.equal(Number(response.headers.get('content-length')), text.length);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const body = JSON.parse(text.toString('utf8'));
    assert.equal(response.status, 200);
    // The same images, byte for byte, as the first reply: nothing was cut or reordered on the way.
    assert.deepEqual(
      body.data.map((d: any) => d.imageBase64Data).sort(),
      items.map((d: any) => d.imageBase64Data).sort(),
    );
    assert.equal(body.errors.length, 1);
    assert.equal(body.errors[0].parameter, 'taskUUID');
  });

  test('an authentication task first is an alternative to the Bearer header', async () => {
    const taskUUID = randomUUID();
    const response = await post(
      server,
      [
        { taskType: 'authentication', apiKey: TEST_KEY },
        { taskType: 'imageInference', taskUUID, model: 'kiln:studio@1', positivePrompt: 'x', width: 128, height: 128, includeCost: true },
      ],
      { key: null },
    );
    assert.equal(response.status, 200);
    assert.equal(response.body.data[0].taskType, 'authentication');
    assert.equal(typeof response.body.data[0].connectionSessionUUID, 'string');
    assert.equal(response.body.data[1].taskUUID, taskUUID);
    assert.equal(response.body.data[1].cost, 0);
  });

  test('missing or wrong keys get 401 invalidApiKey', async () => {
    const task = { taskType: 'ping', ping: true };
    for (const key of [null, 'nope']) {
      const response = await post(server, [task], { key });
      assert.equal(response.status, 401);
      assert.equal(response.body.errors[0].code, 'invalidApiKey');
    }
    const wrongAuthTask = await post(server, [{ taskType: 'authentication', apiKey: 'nope' }, task], { key: null });
    assert.equal(wrongAuthTask.status, 401);
    assert.equal(wrongAuthTask.body.errors[0].code, 'invalidApiKey');
  });

  test('ping answers pong; mixed batches answer 200 with data and errors', async () => {
    const good = randomUUID();
    const bad = randomUUID();
    const response = await post(server, [
      { taskType: 'ping', ping: true },
      { taskType: 'imageInference', taskUUID: good, model: 'kiln:studio@1', positivePrompt: 'hills', width: 128, height: 128 },
      { taskType: 'imageInference', taskUUID: bad, model: 'kiln:studio@1', positivePrompt: '', width: 128, height: 128 },
    ]);
    assert.equal(response.status, 200);
    assert.deepEqual(response.body.data[0], { taskType: 'ping', pong: true });
    assert.equal(response.body.data[1].taskUUID, good);
    assert.equal(response.body.errors.length, 1);
    assert.equal(response.body.errors[0].taskUUID, bad);
    assert.equal(response.body.errors[0].code, 'invalidPositivePrompt');
  });

  test('O3 prices: 0.028 for 1K, 0.056 for 4K; seeds follow seed + k', async () => {
    const taskUUID = randomUUID();
    const response = await post(server, [
      { taskType: 'imageInference', taskUUID, model: 'klingai:kling-image@o3', positivePrompt: 'a glacier at sunrise',
        width: 1552, height: 656, numberResults: 3, includeCost: true, seed: 1000, outputType: 'base64Data', outputFormat: 'webp' },
    ]);
    assert.equal(response.status, 200);
    assert.deepEqual(response.body.data.map((i: any) => i.seed).sort(), [1000, 1001, 1002]);
    assert.ok(response.body.data.every((i: any) => i.cost === 0.028));
    const again = await post(server, [
      { taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: 'a glacier at sunrise',
        width: 1552, height: 656, numberResults: 1, seed: 1001, outputType: 'base64Data', outputFormat: 'WEBP' },
    ]);
    const first = response.body.data.find((i: any) => i.seed === 1001);
    assert.equal(again.body.data[0].imageBase64Data, first.imageBase64Data, 'same inputs and seed give the same image');
  });

  test('images and tasks survive a restart', async () => {
    const dataServer = await startTestServer();
    const taskUUID = randomUUID();
    const response = await post(dataServer, [
      { taskType: 'imageInference', taskUUID, model: 'kiln:studio@1', positivePrompt: 'red arches', width: 256, height: 128 },
    ]);
    const url = new URL(response.body.data[0].imageURL);
    const before = Buffer.from(await (await fetch(`${dataServer.url}${url.pathname}`)).arrayBuffer());
    await dataServer.close({ keepData: true });
    const restarted = await startTestServer({}, { dataDir: dataServer.dataDir });
    try {
      const after = Buffer.from(await (await fetch(`${restarted.url}${url.pathname}`)).arrayBuffer());
      assert.deepEqual(after, before);
      const polled = await post(restarted, [{ taskType: 'getResponse', taskUUID }]);
      assert.equal(polled.body.data[0].status, 'success');
      assert.equal(polled.body.data[0].imageUUID, response.body.data[0].imageUUID);
    } finally {
      await restarted.close();
    }
  });

  test('getResponse of an unknown task is taskNotFound (404)', async () => {
    const taskUUID = randomUUID();
    const response = await post(server, [{ taskType: 'getResponse', taskUUID }]);
    assert.equal(response.status, 404);
    assert.equal(response.body.errors[0].code, 'taskNotFound');
    assert.equal(response.body.errors[0].taskUUID, taskUUID);
  });

  test('unknown image paths answer 404', async () => {
    const response = await fetch(`${server.url}/image/${randomUUID()}.jpg`);
    assert.equal(response.status, 404);
    const body = (await response.json()) as any;
    assert.equal(body.errors[0].code, 'imageNotFound');
  });
});
