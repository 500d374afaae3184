import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startHeldImage } from './fixtures/held-image.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const STAGES = ['queued', 'rendering', 'encoding', 'storing', 'uploading'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const task = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a hot-air balloon over a canyon',
  width: 2048,
  height: 2048,
  numberResults: 3,
  outputFormat: 'PNG',
  ...extra,
});

/** Waits until the client holds `count` result items of the task (progress items aside). */
async function results(ws: RawWsClient, taskUUID: string, count: number): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const done = ws.frames.flatMap((f) => f.data ?? []).filter((d: any) => d.taskUUID === taskUUID && d.imageUUID);
    if (done.length >= count) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${count} results of ${taskUUID}`);
}

describe('progress items (progress: true)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' });
  });
  after(() => server.close());

  test('every image moves forward from queued through its stages, at most a few frames a second', async () => {
    const ws = await RawWsClient.connect(server.wsUrl);
    try {
      await ws.authenticate(TEST_KEY);
      // With a seed, image k's result carries seed + k: results can be told apart by index.
      const t = task({ progress: true, seed: 1000 });
      const arrivals: number[] = [];
      ws.socket.on('message', (data) => {
        if (data.toString().includes('"status":"progress"')) arrivals.push(Date.now());
      });
      const started = Date.now();
      ws.send([t]);
      await results(ws, t.taskUUID, 3);
      const elapsed = Date.now() - started;
      const seen = new Map<number, string[]>();
      for (const frame of ws.frames) {
        for (const item of frame.data ?? []) {
          if (item.taskUUID !== t.taskUUID) continue;
          if (item.status === 'progress') {
            assert.deepEqual(Object.keys(item).sort(), ['imageIndex', 'progress', 'stage', 'status', 'taskType', 'taskUUID']);
            assert.ok(item.progress >= 0 && item.progress <= 1);
            const stages = seen.get(item.imageIndex) ?? [];
            stages.push(item.stage);
            seen.set(item.imageIndex, stages);
          }
        }
      }
      assert.deepEqual([...seen.keys()].sort(), [0, 1, 2]);
      // No progress item of an image follows its result (but `uploading`, which this task has not).
      const done = new Set<number>();
      for (const item of ws.frames.flatMap((f) => f.data ?? []).filter((d: any) => d.taskUUID === t.taskUUID)) {
        if (item.status === 'progress') assert.ok(!done.has(item.imageIndex), `image ${item.imageIndex}: ${item.stage} after its result`);
        else done.add(item.seed - 1000);
      }
      for (const [index, stages] of seen) {
        assert.equal(stages[0], 'queued', `image ${index}: ${stages.join(' → ')}`);
        const order = stages.map((stage) => STAGES.indexOf(stage));
        assert.deepEqual(order, [...order].sort((a, b) => a - b), `image ${index} moves forward only: ${stages.join(' → ')}`);
        assert.ok(stages.length >= 2, `image ${index}: ${stages.join(' → ')}`);
      }
      // Throttled to one frame per 250 ms on the server (two frames may arrive together).
      assert.ok(arrivals.length <= elapsed / 250 + 2, `${arrivals.length} progress frames in ${elapsed} ms`);
    } finally {
      ws.close();
    }
  });

  test('without the flag a client sees results only', async () => {
    const ws = await RawWsClient.connect(server.wsUrl);
    try {
      await ws.authenticate(TEST_KEY);
      const t = task({ numberResults: 1, width: 512, height: 512 });
      ws.send([t]);
      await results(ws, t.taskUUID, 1);
      assert.equal(ws.frames.flatMap((f) => f.data ?? []).filter((d: any) => d.status === 'progress').length, 0);
    } finally {
      ws.close();
    }
  });

  test('progress and results are replayed when a dropped session resumes', async () => {
    const first = await RawWsClient.connect(server.wsUrl);
    const auth = await first.authenticate(TEST_KEY);
    const session = auth.data[0].connectionSessionUUID;
    // The run waits for its reference until after the drop, so the later stages come well after
    // it (frames written to a socket that is closing are lost, as on any network).
    const held = await startHeldImage();
    const t = task({ progress: true, numberResults: 2, width: 256, height: 256, inputs: { referenceImages: [held.url] } });
    first.send([t]);
    // Drop the connection as soon as the task is queued.
    await first.next((f) => (f.data ?? []).some((d: any) => d.status === 'progress' && d.taskUUID === t.taskUUID));
    first.socket.terminate();
    await sleep(200);
    held.release();
    // Every stage and image happens while no socket is there: the resumed session gets them replayed.
    for (let done = 0; done < 2; await sleep(25)) {
      done = (await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }])).body.data.filter((item: any) => item.status === 'success').length;
    }
    const second = await RawWsClient.connect(server.wsUrl);
    try {
      await second.authenticate(TEST_KEY, session);
      await results(second, t.taskUUID, 2);
      const replayed = second.frames.flatMap((f) => f.data ?? []).filter((d: any) => d.taskUUID === t.taskUUID);
      assert.ok(replayed.some((d: any) => d.status === 'progress'), `progress items kept for the resumed session: ${JSON.stringify(replayed.map((d: any) => d.stage ?? d.imageUUID))}`);
      assert.equal(replayed.filter((d: any) => d.imageUUID).length, 2);
    } finally {
      second.close();
      await held.close();
    }
  });

  test('progress must be a boolean', async () => {
    const answer = await post(server, [task({ progress: 'yes' })]);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.errors[0].parameter, 'progress');
  });
});
