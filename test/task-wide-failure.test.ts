import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A failure that belongs to the whole task (here: a reference image that cannot be fetched) is
 * one error item for the task, carrying imageCount, on every channel.
 */
describe('a task-wide failure is reported once per task', () => {
  let server: TestServer;
  let missing: Receiver;
  before(async () => {
    server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' });
    missing = await Receiver.start(() => 404);
  });
  after(async () => {
    await missing.close();
    await server.close();
  });

  const task = (extra: Record<string, unknown> = {}) => ({
    taskType: 'imageInference',
    taskUUID: randomUUID(),
    model: 'kiln:studio@1',
    positivePrompt: 'a harbour at dawn',
    width: 256,
    height: 256,
    numberResults: 3,
    inputs: { referenceImages: [`${missing.url}/gone.png`] },
    ...extra,
  });

  const checkOne = (errors: any[], taskUUID: string) => {
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0].taskUUID, taskUUID);
    assert.equal(errors[0].imageCount, 3);
    assert.match(errors[0].code, /^(imageFetchFailed|invalidReferenceImage)$/);
  };

  test('REST sync reply and getResponse: one error with imageCount 3', async () => {
    const t = task();
    const reply = await post(server, [t]);
    assert.deepEqual(reply.body.data, []);
    checkOne(reply.body.errors, t.taskUUID);
    const state = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
    assert.deepEqual(state.body.data, []);
    checkOne(state.body.errors, t.taskUUID);
    assert.equal(state.body.errors[0].status, 'error');
    assert.equal(state.body.errors[0].group, undefined, 'internal bookkeeping stays inside');
  });

  test('WebSocket: one error frame for the task', async () => {
    const ws = await RawWsClient.connect(server.wsUrl);
    try {
      ws.send([{ taskType: 'authentication', apiKey: TEST_KEY }]);
      await ws.next((f) => f.data?.[0]?.taskType === 'authentication');
      const t = task();
      ws.send([t]);
      const first = await ws.next((f) => f.errors?.[0]?.taskUUID === t.taskUUID);
      await sleep(500);
      // `next` took the first frame off the list; any further error frame for the task is left there.
      const errors = [first, ...ws.frames].flatMap((f) => (f.errors ?? []).filter((e: any) => e.taskUUID === t.taskUUID));
      checkOne(errors, t.taskUUID);
    } finally {
      ws.socket.close();
    }
  });

  test('webhook: one POST with the error and imageCount', async () => {
    const hooks = await Receiver.start(() => 200);
    try {
      const t = task({ webhookURL: `${hooks.url}/hook` });
      const ack = await post(server, [t]);
      assert.equal(ack.status, 200);
      await hooks.waitFor(1);
      await sleep(500);
      assert.equal(hooks.requests.length, 1);
      const body = JSON.parse(hooks.requests[0]!.body.toString());
      checkOne(body.errors, t.taskUUID);
    } finally {
      await hooks.close();
    }
  });
});
