import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startHeldImage, type HeldImage } from './fixtures/held-image.ts';
import { post, startTestServer, type TestServer } from './helpers/kiln-server.ts';

/** Two images whose run waits for `held` until the test releases it. */
const held = (prompt: string, image: HeldImage) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: prompt,
  width: 256,
  height: 256,
  numberResults: 2,
  deliveryMethod: 'async',
  inputs: { referenceImages: [image.url] },
});

describe('getResponse tells queued from running work (kilnStatus)', () => {
  let server: TestServer;
  before(async () => {
    // One task at a time, so the second task waits behind the first.
    server = await startTestServer({ KILN_QUEUE_CONCURRENCY: '1', KILN_ALLOW_PRIVATE_URLS: 'true' });
  });
  after(() => server.close());

  const state = async (taskUUID: string) => (await post(server, [{ taskType: 'getResponse', taskUUID }])).body;

  test('queued (with the images ahead) → running (with its start) → done', async () => {
    const [firstImage, secondImage] = [await startHeldImage(), await startHeldImage()];
    const first = held('a storm over basalt cliffs', firstImage);
    const second = held('a glacier at noon', secondImage);
    assert.equal((await post(server, [first])).status, 200);
    assert.equal((await post(server, [second])).status, 200);

    const queued = await state(second.taskUUID);
    assert.equal(queued.data.length, 2);
    for (const item of queued.data) {
      assert.equal(item.status, 'processing');
      assert.equal(item.kilnStatus, 'queued');
      // The first task's two unfinished images are ahead.
      assert.equal(item.queuePosition, 2, JSON.stringify(item));
      assert.equal(item.startedAt, undefined);
    }
    firstImage.release();

    const seen = new Set<string>();
    let running: any;
    for (let i = 0; i < 600; i++) {
      const body = await state(second.taskUUID);
      for (const item of body.data) seen.add(item.kilnStatus ?? item.status);
      running ??= body.data.find((item: any) => item.kilnStatus === 'running');
      // Seen running (waiting for its reference): now it may finish.
      if (running) secondImage.release();
      if (body.data.every((item: any) => item.status === 'success')) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.ok(running, `never seen running: ${[...seen].join(', ')}`);
    assert.equal(running.queuePosition, undefined);
    assert.ok(Date.parse(running.startedAt) <= Date.now() && Date.now() - Date.parse(running.startedAt) < 120_000, running.startedAt);
    const done = await state(second.taskUUID);
    assert.equal(done.data.length, 2);
    for (const item of done.data) {
      assert.equal(item.status, 'success');
      assert.equal(item.kilnStatus, undefined, 'finished items are plain Runware items');
    }
  });
});
