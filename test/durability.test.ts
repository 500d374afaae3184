import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ChildServer } from './helpers/child-server.ts';
import { post, startTestServer, TEST_KEY } from './helpers/kiln-server.ts';
import { RawWsClient } from './helpers/ws-client.ts';
import { Receiver } from './helpers/receiver.ts';
import { startHeldImage, type HeldImage } from './fixtures/held-image.ts';

/** A child's settings for tasks that reference a held image: loopback allowed, a fetch that may wait minutes. */
const HOLDING = { KILN_ALLOW_PRIVATE_URLS: 'true', KILN_FETCH_TOTAL_TIMEOUT_MS: '300000' };

/** A task that holds its queue slot, fetching `held`, until the image is released. */
const heldTask = (held: HeldImage, extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference', taskUUID: randomUUID(), model: 'kiln:studio@1', positivePrompt: 'a lighthouse on cliffs above a stormy sea',
  deliveryMethod: 'async', width: 256, height: 256, inputs: { referenceImages: [held.url] }, ...extra,
});

async function pollAll(server: { url: string }, taskUUID: string, expected: number): Promise<any[]> {
  for (let i = 0; i < 1200; i++) {
    const response = await post(server, [{ taskType: 'getResponse', taskUUID }]);
    if (response.body.errors?.length) throw new Error(`getResponse errors: ${JSON.stringify(response.body.errors)}`);
    const done = (response.body.data ?? []).filter((item: any) => item.status === 'success');
    if (done.length >= expected) return response.body.data;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('task did not finish');
}

describe('durability', () => {
  test('SIGKILL mid-task: the task resumes, every image once, webhooks deduplicable, nothing redone', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-crash-'));
    const receiver = await Receiver.start(() => 200);
    // One render thread: the images finish one after another, never several at once.
    const env = { KILN_ALLOW_PRIVATE_URLS: 'true', KILN_QUEUE_CONCURRENCY: '1', KILN_STUDIO_THREADS: '1' };
    let server = await ChildServer.start(dataDir, env);
    try {
      const taskUUID = randomUUID();
      const ack = await post(server, [
        { taskType: 'imageInference', taskUUID, model: 'klingai:kling-image@o3', positivePrompt: 'a glacier rail terminal, cyan and silver',
          width: 2048, height: 2048, numberResults: 4, deliveryMethod: 'async', webhookURL: `${receiver.url}/hook` },
      ]);
      assert.equal(ack.status, 200);
      await receiver.waitFor(1);
      const killed = await server.kill('SIGKILL');
      assert.equal(killed.signal, 'SIGKILL');
      const bodies = receiver.requests.map((r) => JSON.parse(r.body.toString()));
      assert.ok(bodies.every((b) => Array.isArray(b.data)), `webhooks before the crash: ${JSON.stringify(bodies)}`);
      const beforeCrash = new Set(bodies.map((b) => b.data[0].imageUUID as string));
      assert.ok(beforeCrash.size >= 1 && beforeCrash.size < 4, `finished before the crash: ${beforeCrash.size}`);

      server = await ChildServer.start(dataDir, env);
      const final = await pollAll(server, taskUUID, 4);
      const finalImages = final.map((item) => item.imageUUID as string);
      assert.equal(new Set(finalImages).size, 4);
      for (const image of beforeCrash) assert.ok(finalImages.includes(image), 'an image finished before the crash was kept, not redone');
      // Deliveries pending at the crash are sent again after the restart (same webhook-id), so
      // wait for four distinct images rather than four requests.
      const imageOf = (r: { body: Buffer }): string => JSON.parse(r.body.toString()).data[0].imageUUID as string;
      for (const image of finalImages) await receiver.waitFor(1, (r) => imageOf(r) === image);
      // From the receiver's side, after deduplication by webhook-id: one delivery per image, no strays.
      const byId = new Map<string, string>();
      for (const request of receiver.requests) {
        const image = JSON.parse(request.body.toString()).data[0].imageUUID as string;
        const id = String(request.headers['webhook-id']);
        assert.equal(byId.get(id) ?? image, image, 'one delivery id never carries two images');
        byId.set(id, image);
      }
      assert.deepEqual([...new Set(byId.values())].sort(), [...finalImages].sort());
      assert.equal(byId.size, 4);
    } finally {
      await server.kill('SIGTERM');
      await receiver.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  /** Polls getResponse until the task has an error item; asserts it is one `timeoutDeadline` and answers it. */
  async function deadlineError(server: ChildServer, taskUUID: string): Promise<any> {
    let ended: any;
    for (let i = 0; i < 600 && !ended; i++) {
      const body = (await post(server, [{ taskType: 'getResponse', taskUUID }])).body;
      if (body.errors?.length) ended = body;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(ended, 'the task never ended');
    assert.equal(ended.errors.length, 1, JSON.stringify(ended.errors));
    assert.equal(ended.errors[0].code, 'timeoutDeadline');
    return ended.errors[0];
  }

  /**
   * A task waiting for a held reference holds the one queue slot; `late` (two images, `deadlineSeconds`) waits
   * behind it. The process is killed (its deadline timer with it), and after `downMs` a new one
   * starts on the same data. Asserts that `late` ends with `timeoutDeadline` while the task ahead
   * still runs and that no run of it ever started; `more` adds assertions on the new process.
   */
  async function lateTaskAfterRestart(env: Record<string, string>, deadlineSeconds: number, downMs: number, more: (server: ChildServer) => Promise<void> = async () => {}, lateCount = 1): Promise<void> {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-deadline-'));
    const held = await startHeldImage();
    let server = await ChildServer.start(dataDir, { KILN_QUEUE_CONCURRENCY: '1', ...HOLDING, ...env });
    try {
      const base = { taskType: 'imageInference', model: 'kiln:studio@1', positivePrompt: 'a lighthouse on cliffs above a stormy sea', deliveryMethod: 'async' };
      const blocker = heldTask(held);
      const late = Array.from({ length: lateCount }, () => ({ ...base, taskUUID: randomUUID(), numberResults: 2, width: 256, height: 256, deadlineSeconds }));
      assert.equal((await post(server, [blocker])).status, 200);
      for (let i = 0; i < late.length; i += 50) assert.equal((await post(server, late.slice(i, i + 50))).status, 200);
      await server.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, downMs));
      server = await ChildServer.start(dataDir, { KILN_QUEUE_CONCURRENCY: '1', ...HOLDING, ...env });
      const state = async (taskUUID: string) => (await post(server, [{ taskType: 'getResponse', taskUUID }])).body;
      // The first ends when the pass reaches it; then every one is read, 50 to a request.
      assert.equal((await deadlineError(server, late[0]!.taskUUID)).imageCount, 2);
      for (let i = 0; i < late.length; i += 50) {
        const batch = late.slice(i, i + 50);
        let errors: any[] = [];
        for (let round = 0; round < 200 && errors.length < batch.length; round++) {
          if (round > 0) await new Promise((resolve) => setTimeout(resolve, 50));
          errors = (await post(server, batch.map((task) => ({ taskType: 'getResponse', taskUUID: task.taskUUID })))).body.errors ?? [];
        }
        assert.deepEqual(
          batch.map((task) => errors.filter((error) => error.taskUUID === task.taskUUID).map((error) => [error.code, error.imageCount])),
          batch.map(() => [['timeoutDeadline', 2]]),
        );
      }
      // Ended while the task ahead of them still runs: the backlog never reached them…
      assert.ok((await state(blocker.taskUUID)).data.some((item: any) => item.status === 'processing'), 'the tasks ended only when the queue reached them');
      // …and no run of them ever started.
      const lateIds = new Set(late.map((task) => task.taskUUID.toLowerCase()));
      assert.ok(!server.logs.some((line) => line.msg === 'task claimed' && lateIds.has(line.taskUUID as string)));
      await more(server);
    } finally {
      // Not SIGTERM: its drain would wait for the blocker.
      await server.kill('SIGKILL');
      await held.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }

  test('a queued task whose process died before its deadline fails at the deadline, not when the backlog reaches it', async () => {
    // A sweep every second: the deadline's backstop runs with it.
    await lateTaskAfterRestart({ KILN_SWEEP_SECONDS: '1' }, 3, 0, async (server) => {
      // The log line reaches the test through the child's stdout, after the task has ended.
      for (let i = 0; i < 100 && !server.logs.some((line) => line.msg === 'ended queued tasks past their deadline'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(server.logs.some((line) => line.msg === 'ended queued tasks past their deadline'));
    });
  });

  test('a queued task whose deadline passed while no process ran is ended when one starts, before the backlog reaches it', async () => {
    // No sweep during the test: only the start can end it.
    await lateTaskAfterRestart({ KILN_SWEEP_SECONDS: '3600' }, 1, 1_500);
  });

  test('more overdue tasks than one pass reads at a time (200) are all ended by the start, batch after batch', async () => {
    // The deadline falls after the kill (no timer of the first process ends them), while the process is down.
    await lateTaskAfterRestart({ KILN_SWEEP_SECONDS: '3600' }, 4, 4_500, async () => {}, 230);
  });

  test('a task left running by a process that died ends at its deadline while it waits behind the backlog again', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-abandoned-'));
    const held = await startHeldImage();
    let server = await ChildServer.start(dataDir, { KILN_QUEUE_CONCURRENCY: '2', ...HOLDING });
    try {
      // Both wait for the held image: both runs are under way when the process dies.
      const blocker = heldTask(held);
      const late = heldTask(held, { numberResults: 6, deadlineSeconds: 6 });
      assert.equal((await post(server, [blocker])).status, 200);
      assert.equal((await post(server, [late])).status, 200);
      const claimed = (taskUUID: string) => server.logs.some((line) => line.msg === 'task claimed' && line.taskUUID === taskUUID.toLowerCase());
      for (let i = 0; i < 200 && !claimed(late.taskUUID); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      assert.ok(claimed(late.taskUUID), 'the late task never started');
      // Its run (and the run's deadline timer) dies with the process; the store still says running.
      await server.kill('SIGKILL');
      // One slot now: the blocker, older, runs first and the late task waits behind it. A running
      // task counts as abandoned 2 s (the queue's lock time) past its deadline.
      server = await ChildServer.start(dataDir, { KILN_QUEUE_CONCURRENCY: '1', KILN_QUEUE_LOCK_SECONDS: '2', KILN_SWEEP_SECONDS: '1', ...HOLDING });
      const state = async (taskUUID: string) => (await post(server, [{ taskType: 'getResponse', taskUUID }])).body;
      await deadlineError(server, late.taskUUID);
      assert.ok((await state(blocker.taskUUID)).data.some((item: any) => item.status === 'processing'), 'the task ended only when the queue reached it');
      assert.ok(!claimed(late.taskUUID), 'the restarted process ran the late task');
    } finally {
      await server.kill('SIGKILL');
      await held.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('a backlog larger than a KILN_QUEUE_MAX lowered across a restart counts in full: new tasks wait for it to drain', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bound-'));
    const held = await startHeldImage();
    let server = await ChildServer.start(dataDir, { KILN_QUEUE_CONCURRENCY: '1', KILN_QUEUE_MAX: '20', ...HOLDING });
    try {
      // 11 images accepted under a bound of 20; the first task alone is larger than the new bound.
      const backlog = [heldTask(held, { numberResults: 10 }), heldTask(held, { inputs: undefined })];
      for (const task of backlog) assert.equal((await post(server, [task])).status, 200);
      await server.kill('SIGKILL');
      server = await ChildServer.start(dataDir, { KILN_QUEUE_CONCURRENCY: '1', KILN_QUEUE_MAX: '5', ...HOLDING });
      const response = await post(server, [heldTask(held, { inputs: undefined })]);
      assert.equal(response.status, 429, JSON.stringify(response.body));
      assert.equal(response.body.errors[0].code, 'queueFull');
      assert.equal(response.body.errors[0].limit, 5);
    } finally {
      await server.kill('SIGKILL');
      await held.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('SIGTERM drains or hands back work and exits 0; the task completes after a restart', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-term-'));
    const held = await startHeldImage();
    const env = { KILN_SHUTDOWN_DRAIN_SECONDS: '1', KILN_QUEUE_CONCURRENCY: '1', ...HOLDING };
    let server = await ChildServer.start(dataDir, env);
    try {
      // The run waits for its reference past the drain time: it must be handed back.
      const { taskUUID } = heldTask(held);
      await post(server, [heldTask(held, { taskUUID, numberResults: 3 })]);
      for (let i = 0; i < 400 && held.requests() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 25));
      assert.equal(held.requests(), 1, 'the run started');
      const exit = await server.kill('SIGTERM');
      assert.equal(exit.code, 0);
      held.release();
      server = await ChildServer.start(dataDir, env);
      const final = await pollAll(server, taskUUID, 3);
      assert.equal(new Set(final.map((item) => item.imageUUID)).size, 3);
      assert.equal(held.requests(), 2, 'run again after the restart');
    } finally {
      await server.kill('SIGTERM');
      await held.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('SIGTERM with sync clients waiting answers them 503 and exits 0 within the drain bound', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-term-sync-'));
    const held = await startHeldImage();
    const server = await ChildServer.start(dataDir, { KILN_SHUTDOWN_DRAIN_SECONDS: '1', KILN_QUEUE_CONCURRENCY: '1', ...HOLDING });
    try {
      // The REST task's run waits for its reference; the WebSocket task waits behind it.
      const big = () => heldTask(held, { deliveryMethod: 'sync', numberResults: 6 });
      const rest = post(server, [big()]);
      const ws = await RawWsClient.connect(`${server.url.replace('http', 'ws')}/v1`);
      await ws.authenticate(TEST_KEY);
      const wsTask = big();
      ws.send([wsTask]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = performance.now();
      const exit = server.kill('SIGTERM');
      const answer = await rest;
      assert.equal(answer.body.errors.at(-1).code, 'serviceUnavailable');
      const frame = await ws.next((f) => f.errors?.[0]?.taskUUID === wsTask.taskUUID);
      assert.equal(frame.errors[0].code, 'serviceUnavailable');
      assert.equal((await exit).code, 0);
      assert.ok(performance.now() - started < 10_000, 'bounded by the drain time');
    } finally {
      await held.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('a webhook still retrying when the server stops is delivered after the restart, under the same id', async () => {
    let accept = false;
    const receiver = await Receiver.start(() => (accept ? 200 : 503));
    const env = { KILN_ALLOW_PRIVATE_URLS: 'true', KILN_RETRY_BASE_MS: '1000', KILN_RETRY_MAX_MS: '1000', KILN_WEBHOOK_MAX_ATTEMPTS: '8' };
    const first = await startTestServer(env);
    try {
      const taskUUID = randomUUID();
      await post(first, [{ taskType: 'imageInference', taskUUID, model: 'kiln:studio@1', positivePrompt: 'a pier', width: 128, height: 128,
        webhookURL: `${receiver.url}/hook` }]);
      await receiver.waitFor(1);
      await first.close({ keepData: true });
      const failedId = receiver.requests[0]!.headers['webhook-id'];
      accept = true;
      const second = await startTestServer(env, { dataDir: first.dataDir });
      try {
        await receiver.waitFor(1, (r) => r.headers['webhook-id'] === failedId && receiver.requests.indexOf(r) > 0);
        assert.ok(receiver.requests.every((r) => r.headers['webhook-id'] === failedId));
      } finally {
        await second.close();
      }
    } finally {
      await receiver.close();
    }
  });

  test('a sync task whose client went away finishes and stays readable', async () => {
    const held = await startHeldImage();
    const server = await startTestServer(HOLDING);
    try {
      const task = heldTask(held, { deliveryMethod: 'sync', numberResults: 2 });
      const controller = new AbortController();
      const request = fetch(`${server.url}/v1`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_KEY}` },
        body: JSON.stringify([task]),
        signal: controller.signal,
      });
      // The client leaves while the run waits for its reference.
      for (let i = 0; i < 400 && held.requests() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 25));
      controller.abort();
      await assert.rejects(request);
      held.release();
      const final = await pollAll(server, task.taskUUID, 2);
      assert.equal(final.length, 2);
    } finally {
      await server.close();
      await held.close();
    }
  });
});
