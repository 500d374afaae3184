import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';
import { RawWsClient } from './helpers/ws-client.ts';
import { startHeldImage, type HeldImage } from './fixtures/held-image.ts';

const OTHER_KEY = 'kiln_other_key_0123456789abcdefghijklmn';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const task = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a lighthouse on cliffs above a stormy sea',
  width: 256,
  height: 256,
  ...extra,
});
/** Work that keeps the (single) queue slot busy until `held` is released. */
const blocker = (held: HeldImage) => task({ deliveryMethod: 'async', inputs: { referenceImages: [held.url] } });

describe('cancelTask and deadlineSeconds', () => {
  let server: TestServer;
  before(async () => {
    // One task at a time, so a task can be held in the queue behind another.
    server = await startTestServer({ KILN_API_KEYS: `${TEST_KEY},${OTHER_KEY}`, KILN_QUEUE_CONCURRENCY: '1', KILN_ALLOW_PRIVATE_URLS: 'true', KILN_FETCH_TOTAL_TIMEOUT_MS: '120000' });
  });
  after(() => server.close());

  const state = async (taskUUID: string) => (await post(server, [{ taskType: 'getResponse', taskUUID }])).body;
  const until = async (what: string, check: () => Promise<boolean>, ms = 60_000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };

  test('a queued task is cancelled whole: one taskCancelled item, nothing runs, the webhook is told', async () => {
    const hooks = await Receiver.start(() => 200);
    const held = await startHeldImage();
    try {
      const first = blocker(held);
      assert.equal((await post(server, [first])).status, 200);
      const queued = task({ numberResults: 3, webhookURL: `${hooks.url}/hook`, includeCost: true });
      assert.equal((await post(server, [queued])).status, 200);
      const answer = await post(server, [{ taskType: 'cancelTask', taskUUID: queued.taskUUID }]);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body.data, [{ taskType: 'cancelTask', taskUUID: queued.taskUUID, cancelledImages: 3, finishedImages: [] }]);

      const after = await state(queued.taskUUID);
      assert.deepEqual(after.data, []);
      assert.equal(after.errors.length, 1);
      assert.equal(after.errors[0].code, 'taskCancelled');
      assert.equal(after.errors[0].imageCount, 3);
      await hooks.waitFor(1);
      const hook = JSON.parse(hooks.requests[0]!.body.toString());
      assert.equal(hook.errors[0].code, 'taskCancelled');
      assert.equal(hook.errors[0].imageCount, 3);
      // Cancelling again changes nothing; the blocker is untouched and finishes.
      const again = await post(server, [{ taskType: 'cancelTask', taskUUID: queued.taskUUID }]);
      assert.equal(again.body.data[0].cancelledImages, 0);
      held.release();
      await until('the blocker to finish', async () => (await state(first.taskUUID)).data.every((i: any) => i.status === 'success'));
      assert.equal(hooks.requests.length, 1, 'one webhook: nothing ran after the cancel');
    } finally {
      await hooks.close();
      await held.close();
    }
  });

  test('a running 12-image O3 task over WebSocket: aborted, the finished images stay and are the only ones charged, the webhook is told', async () => {
    const ws = await RawWsClient.connect(server.wsUrl);
    const hooks = await Receiver.start(() => 200);
    try {
      await ws.authenticate(TEST_KEY);
      const t = task({
        model: 'klingai:kling-image@o3',
        numberResults: 12,
        width: 2048,
        height: 2048,
        outputFormat: 'PNG',
        includeCost: true,
        deliveryMethod: 'sync',
        webhookURL: `${hooks.url}/hook`,
      });
      ws.send([t]);
      // Cancelled once an image has finished: the rest (most of the twelve) are still to come.
      await until('an image to finish', async () => (await state(t.taskUUID)).data.some((i: any) => i.status === 'success'));
      ws.send([{ taskType: 'cancelTask', taskUUID: t.taskUUID }]);
      const answer = (await ws.next((f) => f.data?.[0]?.taskType === 'cancelTask')).data[0];
      assert.equal(answer.cancelledImages + answer.finishedImages.length, 12);
      assert.ok(answer.cancelledImages >= 1 && answer.finishedImages.length >= 1, JSON.stringify(answer));
      const error = (await ws.next((f) => f.errors?.[0]?.taskUUID === t.taskUUID)).errors[0];
      assert.equal(error.code, 'taskCancelled');
      assert.equal(error.imageCount, answer.cancelledImages);
      // The run stopped (its engine call aborted), and no image finished after the cancel.
      await until('the run to stop', async () => server.logs.some((l) => l.msg === 'task cancelled: its run stopped' && l.taskUUID === t.taskUUID));
      await sleep(300);
      const final = await state(t.taskUUID);
      assert.deepEqual(final.data.map((i: any) => i.imageUUID).sort(), [...answer.finishedImages].sort());
      // Only the finished images carry a cost (0.028 each at 2K).
      for (const item of final.data) assert.equal(item.cost, 0.028);
      assert.equal(final.errors.length, 1);
      // The webhook gets one POST per finished image and one taskCancelled error for the rest.
      await hooks.waitFor(answer.finishedImages.length + 1);
      const bodies = hooks.requests.map((r) => JSON.parse(r.body.toString()));
      const errors = bodies.flatMap((b) => b.errors ?? []);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].code, 'taskCancelled');
      assert.equal(errors[0].imageCount, answer.cancelledImages);
      assert.equal(bodies.filter((b) => b.data).length, answer.finishedImages.length);
      // The store holds the finished images only (an image refused at its settle, had one been
      // encoding when the cancel came, is deleted with its file).
      const db = new Database(path.join(server.dataDir, 'kiln.sqlite'), { readonly: true });
      try {
        const rows = db.prepare('SELECT image_uuid FROM images WHERE task_uuid = ?').all(t.taskUUID.toLowerCase()) as { image_uuid: string }[];
        assert.deepEqual(rows.map((r) => r.image_uuid).sort(), [...answer.finishedImages].sort());
      } finally {
        db.close();
      }
    } finally {
      ws.close();
      await hooks.close();
    }
  });

  test("another key's task cannot be cancelled", async () => {
    const t = task({ deliveryMethod: 'async' });
    assert.equal((await post(server, [t])).status, 200);
    const answer = await post(server, [{ taskType: 'cancelTask', taskUUID: t.taskUUID }], { key: OTHER_KEY });
    assert.equal(answer.status, 404);
    assert.equal(answer.body.errors[0].code, 'taskNotFound');
    await until('the task to finish', async () => (await state(t.taskUUID)).data.every((i: any) => i.status === 'success'));
  });

  test('a deadline that passes while the task is queued: it fails at the deadline and never starts', async (context) => {
    const held = await startHeldImage();
    context.after(() => held.close());
    const first = blocker(held);
    assert.equal((await post(server, [first])).status, 200);
    const t = task({ numberResults: 2, deadlineSeconds: 1 });
    const reply = await post(server, [t]);
    assert.deepEqual(reply.body.data, []);
    assert.equal(reply.body.errors.length, 1);
    assert.equal(reply.body.errors[0].code, 'timeoutDeadline');
    assert.equal(reply.body.errors[0].imageCount, 2);
    assert.equal(reply.body.errors[0].parameter, 'deadlineSeconds');
    // Answered at the deadline, while the task ahead of it is still running…
    assert.ok((await state(first.taskUUID)).data.some((i: any) => i.status === 'processing'), 'the reply did not wait for the queue');
    held.release();
    await until('the blocker to finish', async () => (await state(first.taskUUID)).data.every((i: any) => i.status === 'success'));
    // …and no worker ever claimed it.
    assert.ok(!server.logs.some((l) => l.msg === 'task claimed' && l.taskUUID === t.taskUUID.toLowerCase()));
  });

  test('a deadline that passes while the task runs: finished images stay, the rest fail once', async () => {
    // Twelve 4K PNGs take several seconds on any machine this runs on.
    const t = task({ numberResults: 12, width: 4096, height: 4096, outputFormat: 'PNG', deadlineSeconds: 1 });
    const reply = await post(server, [t]);
    assert.equal(reply.body.errors?.length, 1, JSON.stringify(reply.body.errors));
    const error = reply.body.errors[0];
    assert.equal(error.code, 'timeoutDeadline');
    assert.equal(error.imageCount + reply.body.data.length, 12);
    const final = await state(t.taskUUID);
    assert.equal(final.data.length, reply.body.data.length);
    assert.equal(final.errors[0].imageCount, error.imageCount);
  });

  test('deadlineSeconds is validated', async () => {
    for (const bad of [0, 1.5, 'x', 86_401]) {
      const answer = await post(server, [task({ deadlineSeconds: bad })]);
      assert.equal(answer.status, 400);
      assert.equal(answer.body.errors[0].parameter, 'deadlineSeconds');
    }
  });
});
