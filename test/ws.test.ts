import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startHeldImage } from './fixtures/held-image.ts';
import { resultsMadeWhileAway } from './helpers/away-results.ts';
import { startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const task = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a windmill on green hills under a coral sky',
  width: 256,
  height: 256,
  ...extra,
});

describe('WebSocket /v1 protocol', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_WS_IDLE_SECONDS: '2', KILN_ALLOW_PRIVATE_URLS: 'true' });
  });
  after(() => server.close());

  test('authentication answers the exact shape, with no taskUUID', async () => {
    const client = await RawWsClient.connect(`${server.wsUrl}?sdk=js&version=1.3.2`);
    const frame = await client.authenticate(TEST_KEY);
    assert.deepEqual(Object.keys(frame), ['data']);
    assert.deepEqual(Object.keys(frame.data[0]).sort(), ['connectionSessionUUID', 'taskType']);
    assert.match(frame.data[0].connectionSessionUUID, /^[0-9a-f-]{36}$/);
    client.close();
  });

  test('a bad key gets invalidApiKey without taskUUID and the socket stays open for a retry', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    const failed = await client.authenticate('bad');
    assert.equal(failed.errors[0].code, 'invalidApiKey');
    assert.equal(failed.errors[0].taskType, 'authentication');
    assert.equal(failed.errors[0].taskUUID, undefined);
    const ok = await client.authenticate(TEST_KEY);
    assert.equal(ok.data[0].taskType, 'authentication');
    client.close();
  });

  test('authenticating again on one socket keeps its session; an idle session left for another one ends at once', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    const first = (await client.authenticate(TEST_KEY)).data[0].connectionSessionUUID;
    // A loop of re-authentications makes no new sessions.
    client.send(Array.from({ length: 50 }, () => ({ taskType: 'authentication', apiKey: TEST_KEY })));
    const isAuth = (f: any) => (f.data ?? []).some((i: any) => i.taskType === 'authentication');
    const answers: string[] = [];
    while (answers.length < 50) {
      const frame = await client.next(isAuth);
      for (const item of frame.data) if (item.taskType === 'authentication') answers.push(item.connectionSessionUUID);
    }
    assert.deepEqual(new Set(answers), new Set([first]));
    assert.equal((await client.authenticate(TEST_KEY, first)).data[0].connectionSessionUUID, first);
    // Moving this socket to another session: the first had nothing to resume and is gone.
    const other = (await client.authenticate(TEST_KEY, randomUUID())).data[0].connectionSessionUUID;
    assert.notEqual(other, first);
    client.close();
    const later = await RawWsClient.connect(server.wsUrl);
    assert.notEqual((await later.authenticate(TEST_KEY, first)).data[0].connectionSessionUUID, first, 'the idle session was not kept');
    later.close();
  });

  test('tasks before authentication get invalidApiKey with their taskUUID', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    const t = task();
    client.send([t]);
    const frame = await client.next(client.forTask(t.taskUUID));
    assert.equal(frame.errors[0].code, 'invalidApiKey');
    client.close();
  });

  test('ping gets pong, also while images are rendering; sync results come one per frame', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    await client.authenticate(TEST_KEY);
    const t = task({ numberResults: 3, width: 1024, height: 1024 });
    client.send([t]);
    client.send([{ taskType: 'ping', ping: true }]);
    const pong = await client.next((f) => f.data?.[0]?.taskType === 'ping');
    assert.deepEqual(pong, { data: [{ taskType: 'ping', pong: true }] });
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await client.next(client.forTask(t.taskUUID)));
    for (const frame of results) {
      assert.equal(frame.data.length, 1);
      assert.equal(frame.data[0].taskUUID, t.taskUUID);
      assert.ok(frame.data[0].imageUUID);
    }
    client.close();
  });

  test('async answers exactly one ack frame', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    await client.authenticate(TEST_KEY);
    const t = task({ deliveryMethod: 'async', numberResults: 2 });
    client.send([t]);
    const ack = await client.next(client.forTask(t.taskUUID));
    assert.deepEqual(ack, { data: [{ taskType: 'imageInference', taskUUID: t.taskUUID }] });
    client.send([{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
    const poll = await client.next(client.forTask(t.taskUUID));
    assert.equal(poll.data.length, 2, 'one item per expected image, in one frame');
    client.close();
  });

  test('dryRun=1 validates without running', async () => {
    const client = await RawWsClient.connect(`${server.wsUrl}?sdk=js&dryRun=1`);
    await client.authenticate(TEST_KEY);
    const good = task();
    client.send([good]);
    assert.deepEqual(await client.next(client.forTask(good.taskUUID)), {
      // The ack carries the price the task would have (docs/tenancy.md); studio images cost 0.
      data: [{ taskType: 'imageInference', taskUUID: good.taskUUID, cost: 0 }],
    });
    const bad = task({ width: 100 });
    client.send([bad]);
    assert.equal((await client.next(client.forTask(bad.taskUUID))).errors[0].code, 'unsupportedDimensions');
    client.send([{ taskType: 'getResponse', taskUUID: good.taskUUID }]);
    assert.equal((await client.next(client.forTask(good.taskUUID))).errors[0].code, 'taskNotFound');
    client.close();
  });

  test('results of a dropped socket are replayed when the session resumes', async () => {
    const held = await startHeldImage();
    try {
      const t = task({ numberResults: 2, inputs: { referenceImages: [held.url] } });
      const session = await resultsMadeWhileAway(server, held, t, 2);
      const second = await RawWsClient.connect(server.wsUrl);
      const resumed = await second.authenticate(TEST_KEY, session);
      assert.equal(resumed.data[0].connectionSessionUUID, session);
      const a = await second.next(second.forTask(t.taskUUID));
      const b = await second.next(second.forTask(t.taskUUID));
      assert.notEqual(a.data[0].imageUUID, b.data[0].imageUUID);
      second.close();
    } finally {
      await held.close();
    }
  });

  test('the server closes a socket idle for the configured time', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    await client.authenticate(TEST_KEY);
    const closed = await client.closed;
    assert.equal(closed.code, 1000);
    assert.equal(closed.reason, 'idle timeout');
  });

  test('the WebSocket is also served on /', async () => {
    const client = await RawWsClient.connect(server.wsUrl.replace(/\/v1$/, '/'));
    const frame = await client.authenticate(TEST_KEY);
    assert.equal(frame.data[0].taskType, 'authentication');
    client.close();
  });
});

describe('WebSocket idle timeout while a sync task runs', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_WS_IDLE_SECONDS: '1', KILN_QUEUE_CONCURRENCY: '1', KILN_ALLOW_PRIVATE_URLS: 'true' });
  });
  after(() => server.close());

  test('a socket waiting for results is not idle: a task longer than the idle time gets every image, then the socket idles out', async () => {
    const held = await startHeldImage();
    try {
      const client = await RawWsClient.connect(server.wsUrl);
      await client.authenticate(TEST_KEY);
      // The run waits for its reference for three idle periods, with nothing on the socket.
      const t = task({ numberResults: 6, inputs: { referenceImages: [held.url] } });
      const started = Date.now();
      client.send([t]);
      setTimeout(() => held.release(), 3_000);
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await client.next(client.forTask(t.taskUUID)));
      assert.ok(Date.now() - started >= 3_000, 'the task outlasted the idle time, so the test shows something');
      assert.equal(new Set(results.map((frame) => frame.data[0].imageUUID)).size, 6);
      const closed = await client.closed;
      assert.equal(closed.reason, 'idle timeout', 'once nothing is in flight, the idle timeout applies again');
    } finally {
      await held.close();
    }
  });
});

describe('WebSocket heartbeat', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_WS_HEARTBEAT_SECONDS: '1', KILN_WS_IDLE_SECONDS: '600' });
  });
  after(() => server.close());

  test('a peer that stops answering pings is cut off, and its session resumes with every result', async () => {
    const silent = await RawWsClient.connect(server.wsUrl, { answerPings: false });
    const sessionId = (await silent.authenticate(TEST_KEY)).data[0].connectionSessionUUID;
    const t = task({ numberResults: 2, width: 2048, height: 2048 });
    silent.send([t]);
    const live = new Set<string>();
    const collect = (frame: any): void => {
      for (const item of frame.data ?? []) if (item.taskUUID === t.taskUUID && item.imageUUID) live.add(item.imageUUID);
    };
    silent.socket.on('message', (data: Buffer) => collect(JSON.parse(data.toString())));
    for (const frame of silent.frames) collect(frame);
    const closed = await Promise.race([
      silent.closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the silent peer was never cut off')), 15_000)),
    ]);
    assert.equal(closed.code, 1006, 'cut off without a close frame');
    // Whatever it did not get live comes with the resume (or was already stored for getResponse).
    const back = await RawWsClient.connect(server.wsUrl);
    assert.equal((await back.authenticate(TEST_KEY, sessionId)).data[0].connectionSessionUUID, sessionId);
    const resumed = new Set(live);
    while (resumed.size < 2) {
      const frame = await back.next(back.forTask(t.taskUUID), 60_000);
      for (const item of frame.data ?? []) if (item.imageUUID) resumed.add(item.imageUUID);
    }
    assert.equal(resumed.size, 2);
    back.close();
  });

  test('a peer that answers pings stays connected past several heartbeats', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    await client.authenticate(TEST_KEY);
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    client.send([{ taskType: 'ping', ping: true }]);
    const pong = await client.next((f) => (f.data ?? []).some((i: any) => i.taskType === 'ping'));
    assert.equal(pong.data[0].pong, true);
    client.close();
  });
});
