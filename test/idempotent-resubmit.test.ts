import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { RunwareServer } from '@runware/sdk-js';
import { WebSocket, WebSocketServer } from 'ws';
import type { InferenceTask } from '../src/protocol/task-types.ts';
import { parseTask } from '../src/protocol/validate-task.ts';
import type { TaskStore } from '../src/store/task-store.ts';
import type { Principal } from '../src/tasks/task-service.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { startHeldImage } from './fixtures/held-image.ts';

const OTHER_KEY = 'kiln_other_key_0123456789abcdefghijklmn';

function task(extra: Record<string, unknown> = {}): Record<string, unknown> & { taskUUID: string } {
  return {
    taskType: 'imageInference',
    taskUUID: randomUUID(),
    model: 'kiln:studio@1',
    positivePrompt: 'a windmill beside a river at dusk',
    width: 256,
    height: 256,
    ...extra,
  };
}

const imageUUIDs = (items: any[]): string[] => items.map((item) => item.imageUUID).sort();

/**
 * A loopback WebSocket proxy in front of Kiln that counts the imageInference tasks clients send
 * through it, so a test can tell that a client really retried.
 *
 * It also times the results it passes back. sdk-js checks for results every 100 ms and gives up
 * on an attempt one second after sending it; a result that lands in the last check interval of
 * an attempt is left for the next attempt, which then asks for zero images (`numberResults`
 * lowered by what it has: refused as invalid). So results are passed on only in the first half
 * second after the client's latest send of a task; later ones wait for its next send.
 */
async function countingProxy(target: string): Promise<{ url: string; inferences: () => number; close(): Promise<void> }> {
  let inferences = 0;
  const RESULT_WINDOW_MS = 500;
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (client, request) => {
    const upstream = new WebSocket(`${target}${request.url?.replace(/^\/v1/, '') ?? ''}`);
    const pending: string[] = [];
    let lastSent = -Infinity;
    const held: string[] = [];
    const toClient = (text: string): void => {
      if (client.readyState === WebSocket.OPEN) client.send(text);
    };
    upstream.on('open', () => {
      for (const frame of pending.splice(0)) upstream.send(frame);
    });
    client.on('message', (data) => {
      const text = data.toString();
      const items = JSON.parse(text) as { taskType?: string }[];
      const sent = items.filter((item) => item.taskType === 'imageInference').length;
      inferences += sent;
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else pending.push(text);
      if (sent > 0) {
        lastSent = performance.now();
        setTimeout(() => held.splice(0).forEach(toClient), 50);
      }
    });
    upstream.on('message', (data) => {
      const text = data.toString();
      const frame = JSON.parse(text) as { data?: { taskType?: string; imageUUID?: string }[] };
      const results = (frame.data ?? []).some((item) => item.taskType === 'imageInference' && item.imageUUID !== undefined);
      if (results && performance.now() - lastSent > RESULT_WINDOW_MS) held.push(text);
      else toClient(text);
    });
    client.on('close', () => upstream.close());
    upstream.on('close', () => client.close());
    upstream.on('error', () => client.terminate());
  });
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/v1`,
    inferences: () => inferences,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of wss.clients) socket.terminate();
        wss.close(() => resolve());
      }),
  };
}

describe('idempotent resubmission', () => {
  let server: TestServer;
  before(async () => {
    // One task at a time, so a task can be made to wait behind another.
    server = await startTestServer({ KILN_API_KEYS: `${TEST_KEY},${OTHER_KEY}`, KILN_QUEUE_CONCURRENCY: '1', KILN_ALLOW_PRIVATE_URLS: 'true', KILN_FETCH_TOTAL_TIMEOUT_MS: '120000' });
  });
  after(() => server.close());

  test('a sync task resent while it runs gets the same images, made once', async () => {
    const t = task({ numberResults: 3, width: 1024, height: 1024 });
    const [first, second] = await Promise.all([post(server, [t]), new Promise((r) => setTimeout(r, 50)).then(() => post(server, [t]))]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(first.body.data.length, 3);
    assert.deepEqual(imageUUIDs(second.body.data), imageUUIDs(first.body.data));
    // After the end, a resend answers at once from the store.
    const third = await post(server, [t]);
    assert.deepEqual(imageUUIDs(third.body.data), imageUUIDs(first.body.data));
    const state = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
    assert.deepEqual(imageUUIDs(state.body.data), imageUUIDs(first.body.data), 'three generations, no more');
  });

  test('a sync task sent twice at once (the copies race to store it) gets its images once on each reply', async () => {
    // Both copies usually find the taskUUID free and subscribe beside their inserts; the one
    // whose insert loses drops that subscription and attaches. Either way each reply carries
    // every image exactly once.
    for (let round = 0; round < 3; round++) {
      const t = task({ numberResults: 2 });
      const replies = await Promise.all([post(server, [t]), post(server, [t])]);
      for (const reply of replies) {
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        assert.equal(reply.body.data.length, 2, JSON.stringify(reply.body));
        assert.equal(new Set(imageUUIDs(reply.body.data)).size, 2);
      }
      assert.deepEqual(imageUUIDs(replies[1]!.body.data), imageUUIDs(replies[0]!.body.data));
    }
  });

  test('two keys sending one taskUUID at once: one task runs, the other key gets conflictTaskUUID and none of its results', async () => {
    for (let round = 0; round < 3; round++) {
      const t = task({ progress: true });
      const replies = await Promise.all([post(server, [t]), post(server, [t], { key: OTHER_KEY })]);
      const won = replies.filter((reply) => reply.status === 200);
      const lost = replies.filter((reply) => reply.status !== 200);
      assert.equal(won.length, 1, JSON.stringify(replies.map((reply) => reply.body)));
      assert.equal(won[0]!.body.data.length, 1);
      assert.equal(lost[0]!.status, 400);
      assert.equal(lost[0]!.body.errors[0].code, 'conflictTaskUUID');
      assert.deepEqual(lost[0]!.body.data ?? [], [], 'nothing of the other key’s task');
    }
  });

  test('an async task resent gets its ack again; nothing runs twice', async () => {
    const t = task({ deliveryMethod: 'async', numberResults: 2 });
    const ack = await post(server, [t]);
    const again = await post(server, [t]);
    assert.deepEqual(again.body, ack.body);
    assert.deepEqual(again.body.data, [{ taskType: 'imageInference', taskUUID: t.taskUUID }]);
    let items: any[] = [];
    for (let i = 0; i < 100 && items.filter((item) => item.status === 'success').length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      items = (await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }])).body.data;
    }
    assert.equal(items.length, 2);
    assert.equal(new Set(imageUUIDs(items)).size, 2);
  });

  /** The validated task and the test key's principal, for submissions straight to the service. */
  async function direct(t: Record<string, unknown>): Promise<{ inference: InferenceTask; principal: Principal }> {
    const parsed = parseTask(t);
    assert.ok(parsed.ok && parsed.task.taskType === 'imageInference');
    const principal = await server.kiln.apiKeys.verify(TEST_KEY);
    assert.ok(principal);
    return { inference: parsed.task, principal };
  }

  /** getResponse's items once one of them succeeded (or after 10 s). */
  async function afterSuccess(taskUUID: unknown): Promise<any[]> {
    let items: any[] = [];
    for (let i = 0; i < 100 && !items.some((item) => item.status === 'success'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      items = (await post(server, [{ taskType: 'getResponse', taskUUID }])).body.data ?? [];
    }
    return items;
  }

  test('a resend that finds the task stored by a submission still in flight answers after it: when that one fails and takes the task back, the resend submits the task itself', async () => {
    const t = task({ deliveryMethod: 'async' });
    const { inference, principal } = await direct(t);
    // The first submission's subscription (the `onAccepted` step, beside its insert) fails once
    // the resend has found the task stored: it then deletes the task, as a sync request's
    // submission does when its subscription fails.
    let failSubscription!: (error: Error) => void;
    const subscription = new Promise<void>((_resolve, reject) => (failSubscription = reject));
    const first = server.kiln.service.submitInference(inference, principal, () => subscription);
    first.catch(() => undefined);
    for (let i = 0; i < 200 && !(await server.kiln.service.getResponse(t.taskUUID, principal).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 5));
    const resend = server.kiln.service.submitInference(inference, principal);
    await new Promise((r) => setTimeout(r, 50));
    failSubscription(new Error('the event bus refused the subscription'));
    await assert.rejects(first);
    assert.equal(await resend, 'accepted');
    // The task the resend was acknowledged for exists and runs.
    assert.equal((await afterSuccess(t.taskUUID)).filter((item) => item.status === 'success').length, 1);
  });

  test('a resend whose read of the task answers only after the submission that stored it failed and took it back still submits the task', async () => {
    const t = task({ deliveryMethod: 'async' });
    const { inference, principal } = await direct(t);
    // The store's answers are delayed, never changed: the resend's read finds the row, and its
    // answer arrives once the first submission has failed, deleted the task and finished.
    const store = (server.kiln.service as unknown as { deps: { store: TaskStore } }).deps.store;
    const getTask = store.getTask.bind(store);
    let failSubscription!: (error: Error) => void;
    const first = server.kiln.service.submitInference(inference, principal, () => new Promise<void>((_resolve, reject) => (failSubscription = reject)));
    first.catch(() => undefined);
    for (let i = 0; i < 200 && !(await getTask(inference.taskUUID)); i++) await new Promise((r) => setTimeout(r, 5));
    let firstOver!: () => void;
    const firstSettled = new Promise<void>((resolve) => (firstOver = resolve));
    store.getTask = async (taskUUID: string) => {
      const record = await getTask(taskUUID);
      store.getTask = getTask;
      await firstSettled;
      return record;
    };
    try {
      const resend = server.kiln.service.submitInference(inference, principal);
      await new Promise((r) => setTimeout(r, 20));
      failSubscription(new Error('the event bus refused the subscription'));
      await assert.rejects(first);
      firstOver();
      assert.equal(await resend, 'accepted');
      assert.ok(await getTask(inference.taskUUID), 'the task the resend was acknowledged for is not stored');
    } finally {
      store.getTask = getTask;
    }
  });

  test('three copies of an async task sent at once all get the ack (the copies that lose the insert wait for the one that won, not for one another); it runs once', async () => {
    const t = task({ deliveryMethod: 'async' });
    const { inference, principal } = await direct(t);
    // Sent in one turn of the event loop: all three look the taskUUID up before any has stored it.
    const outcomes = await Promise.all([0, 1, 2].map(() => server.kiln.service.submitInference(inference, principal)));
    assert.deepEqual([...outcomes].sort(), ['accepted', 'attached', 'attached']);
    assert.deepEqual((await afterSuccess(t.taskUUID)).map((item) => item.status), ['success']);
  });

  test('a finished task resent takes no room in the queue (its check and the reservation go out together)', async () => {
    const small = await startTestServer({ KILN_API_KEYS: TEST_KEY, KILN_QUEUE_MAX: '2' });
    try {
      const t = task({ numberResults: 2 });
      const first = await post(small, [t]);
      assert.equal(first.status, 200);
      // Each resend reserves beside its existence check and gives the reservation back: were one
      // kept, the third resend would find the two-image queue full.
      for (let i = 0; i < 3; i++) {
        const again = await post(small, [t]);
        assert.equal(again.status, 200, JSON.stringify(again.body));
        assert.deepEqual(imageUUIDs(again.body.data), imageUUIDs(first.body.data));
      }
      const other = await post(small, [task({ numberResults: 2 })]);
      assert.equal(other.status, 200, JSON.stringify(other.body));
      // A conflicting body is refused as a conflict, never as a full queue, and holds nothing either.
      const changed = await post(small, [{ ...t, positivePrompt: 'something else' }]);
      assert.equal(changed.body.errors[0].code, 'conflictTaskUUID');
      assert.equal((await post(small, [task({ numberResults: 2 })])).status, 200);
    } finally {
      await small.close();
    }
  });

  test('another body or another key still gets conflictTaskUUID', async () => {
    const t = task();
    assert.equal((await post(server, [t])).status, 200);
    const changed = await post(server, [{ ...t, positivePrompt: 'something else' }]);
    assert.equal(changed.status, 400);
    assert.equal(changed.body.errors[0].code, 'conflictTaskUUID');
    assert.equal(changed.body.errors[0].taskUUID, t.taskUUID);
    const other = await post(server, [t], { key: OTHER_KEY });
    assert.equal(other.body.errors[0].code, 'conflictTaskUUID');
  });

  test('@runware/sdk-js retrying with the same taskUUID after a timeout gets its image once', async () => {
    const proxy = await countingProxy(server.wsUrl);
    // timeoutDuration is the SDK's minimum (1 s). The task waits behind another one, held until
    // the SDK has timed out and resent the same task (same taskUUID, same body).
    const held = await startHeldImage();
    const blocker = await post(server, [task({ deliveryMethod: 'async', inputs: { referenceImages: [held.url] } })]);
    assert.equal(blocker.status, 200);
    const runware = new RunwareServer({ apiKey: TEST_KEY, url: proxy.url, shouldReconnect: false, timeoutDuration: 1_000, globalMaxRetries: 15 });
    try {
      await runware.ensureConnection();
      const taskUUID = randomUUID();
      void (async () => {
        for (let i = 0; i < 1200 && proxy.inferences() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 25));
        held.release();
      })();
      const images = await runware.requestImages({
        taskUUID,
        model: 'kiln:studio@1',
        positivePrompt: 'a lighthouse on cliffs above the sea',
        width: 256,
        height: 256,
        numberResults: 1,
      } as any);
      assert.equal(images?.length, 1);
      assert.ok(proxy.inferences() >= 2, `the SDK sent the task ${proxy.inferences()} time(s): no retry happened`);
      const state = await post(server, [{ taskType: 'getResponse', taskUUID }]);
      assert.deepEqual(imageUUIDs(state.body.data), imageUUIDs(images!), 'one image, made once');
    } finally {
      await runware.disconnect();
      await proxy.close();
      await held.close();
    }
  });
});

describe('KILN_IDEMPOTENT_RESUBMIT=false', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_IDEMPOTENT_RESUBMIT: 'false' });
  });
  after(() => server.close());

  test('every reuse of a taskUUID is a conflict', async () => {
    const t = task();
    assert.equal((await post(server, [t])).status, 200);
    const again = await post(server, [t]);
    assert.equal(again.status, 400);
    assert.equal(again.body.errors[0].code, 'conflictTaskUUID');
  });
});
