import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { RunwareServer } from '@runware/sdk-js';
import sharp from 'sharp';
import { startHeldImage } from './fixtures/held-image.ts';
import { resultsMadeWhileAway } from './helpers/away-results.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const task = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a quiet canal with lanterns',
  width: 256,
  height: 256,
  ...extra,
});

describe('delivery edge cases', () => {
  let server: TestServer;
  let png: Buffer;
  before(async () => {
    server = await startTestServer({
      KILN_ALLOW_PRIVATE_URLS: 'true',
      KILN_RETRY_BASE_MS: '20',
      KILN_RETRY_MAX_MS: '50',
      KILN_UPLOAD_MAX_ATTEMPTS: '2',
      KILN_SYNC_TIMEOUT_SECONDS: '1',
    });
    png = await sharp({ create: { width: 400, height: 400, channels: 3, background: '#264653' } }).png().toBuffer();
  });
  after(() => server.close());

  test('a failed image is POSTed to the webhook as {"errors":[…]}', async () => {
    const receiver = await Receiver.start((request) => (request.method === 'GET' ? 404 : 200));
    try {
      const t = task({ webhookURL: `${receiver.url}/hook`, inputs: { referenceImages: [`${receiver.url}/missing.png`] } });
      const ack = await post(server, [t]);
      assert.equal(ack.status, 200);
      await receiver.waitFor(1, (r) => r.method === 'POST');
      const body = JSON.parse(receiver.requests.find((r) => r.method === 'POST')!.body.toString());
      assert.equal(body.data, undefined);
      assert.equal(body.errors[0].code, 'imageFetchFailed');
      assert.equal(body.errors[0].taskUUID, t.taskUUID);
    } finally {
      await receiver.close();
    }
  });

  test('a failed upload is told to the webhook after the image, with the reason', async () => {
    const receiver = await Receiver.start((request) => (request.method === 'PUT' ? 403 : 200));
    try {
      const t = task({ webhookURL: `${receiver.url}/hook`, uploadEndpoint: `${receiver.url}/put` });
      await post(server, [t]);
      await receiver.waitFor(2, (r) => r.method === 'POST');
      const posts = receiver.requests.filter((r) => r.method === 'POST').map((r) => JSON.parse(r.body.toString()));
      const item = posts.find((b) => b.data)!.data[0];
      const notice = posts.find((b) => b.errors)!.errors[0];
      assert.equal(notice.code, 'uploadFailed');
      assert.equal(notice.imageUUID, item.imageUUID);
      assert.match(notice.message, /403/);
    } finally {
      await receiver.close();
    }
  });

  test('@runware/sdk-js gets all its images when their uploads fail', async () => {
    const receiver = await Receiver.start(() => 403);
    const runware = new RunwareServer({ apiKey: TEST_KEY, url: server.wsUrl, shouldReconnect: false });
    try {
      await runware.ensureConnection();
      const images = (await runware.requestImages({
        model: 'kiln:studio@1',
        positivePrompt: 'three boats',
        width: 256,
        height: 256,
        numberResults: 3,
        uploadEndpoint: `${receiver.url}/put`,
      })) as any[];
      assert.equal(images.length, 3);
      assert.equal(new Set(images.map((i) => i.imageUUID)).size, 3);
    } finally {
      await runware.disconnect();
      await receiver.close();
    }
  });

  test('a sync request past the window answers timeoutProvider; the task finishes and stays readable', async () => {
    const held = await startHeldImage();
    try {
      // The run waits for its reference past the 1 s window.
      const t = task({ numberResults: 4, inputs: { referenceImages: [held.url] } });
      const response = await post(server, [t]);
      assert.equal(response.body.errors.at(-1).code, 'timeoutProvider');
      assert.equal(response.body.errors.at(-1).taskUUID, t.taskUUID);
      held.release();
      for (let i = 0; i < 400; i++) {
        const poll = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
        if (poll.body.data.length === 4 && poll.body.data.every((item: any) => item.status === 'success')) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.fail('the task did not finish after the sync window');
    } finally {
      await held.close();
    }
  });

  test('references are checked before the ack: unknown UUIDs, another key’s upload, bad base64', async () => {
    const otherKey = 'kiln_other_key_for_tests';
    await server.kiln.apiKeys.add(otherKey, 'other');
    const upload = await post(server, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: png.toString('base64') }], { key: otherKey });
    const foreign = upload.body.data[0].imageUUID;
    for (const [reference, why] of [
      [randomUUID(), 'unknown'],
      [foreign, 'foreign'],
      ['%%%not-base64', 'malformed'],
    ] as const) {
      const t = task({ deliveryMethod: 'async', inputs: { referenceImages: [png.toString('base64'), reference] } });
      const response = await post(server, [t]);
      assert.equal(response.status, 400, why);
      assert.equal(response.body.errors[0].code, 'invalidReferenceImage', why);
      assert.equal(response.body.errors[0].parameter, 'inputs.referenceImages[1]', why);
    }
    const own = await post(server, [task({ inputs: { referenceImages: [foreign] } })], { key: otherKey });
    assert.equal(own.status, 200, 'the key that uploaded it may use it');
  });
});

describe('protocol details', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' });
  });
  after(() => server.close());

  test('a task right behind its authentication on a fresh server is accepted', async () => {
    const fresh = await startTestServer();
    try {
      const client = await RawWsClient.connect(fresh.wsUrl);
      const t = task();
      client.send([{ taskType: 'authentication', apiKey: TEST_KEY }]);
      client.send([t]);
      const first = await client.next(() => true);
      assert.equal(first.data[0].taskType, 'authentication', 'the authentication answer comes first');
      const result = await client.next(client.forTask(t.taskUUID));
      assert.ok(result.data[0].imageUUID, JSON.stringify(result));
      client.close();
    } finally {
      await fresh.close();
    }
  });

  test('a resumed session gets the authentication answer before the replayed results', async (context) => {
    const held = await startHeldImage();
    context.after(() => held.close());
    const t = task({ numberResults: 2, inputs: { referenceImages: [held.url] } });
    const session = await resultsMadeWhileAway(server, held, t, 2);
    const second = await RawWsClient.connect(server.wsUrl);
    second.send([{ taskType: 'authentication', apiKey: TEST_KEY, connectionSessionUUID: session }]);
    const frames = [await second.next(() => true), await second.next(() => true), await second.next(() => true)];
    assert.equal(frames[0].data[0].taskType, 'authentication');
    assert.equal(frames[1].data[0].taskUUID, t.taskUUID);
    assert.equal(frames[2].data[0].taskUUID, t.taskUUID);
    second.close();
  });

  test('unsupportedDimensions lists the allowed sizes by aspect', async () => {
    const response = await post(server, [task({ model: 'klingai:kling-image@o3', width: 1000, height: 1000 })]);
    const allowed = response.body.errors[0].allowedValues;
    assert.deepEqual(allowed['16:9'], ['1360x768', '2720x1536', '5440x3072']);
    assert.equal(Object.values(allowed).flat().length, 24);
  });

  test('seeds wrap inside 1 … 2^31−1', async () => {
    const response = await post(server, [task({ seed: 2 ** 31 - 2, numberResults: 3, outputType: 'base64Data' })]);
    assert.deepEqual(response.body.data.map((i: any) => i.seed).sort((a: number, b: number) => a - b), [1, 2 ** 31 - 2, 2 ** 31 - 1]);
  });

  test('a taskUUID is taken whatever its case', async () => {
    const t = task();
    assert.equal((await post(server, [t])).status, 200);
    const again = await post(server, [{ ...t, taskUUID: t.taskUUID.toUpperCase(), positivePrompt: `${t.positivePrompt} again` }]);
    assert.equal(again.body.errors[0].code, 'conflictTaskUUID');
  });

  test('a prompt of 2500 emoji is accepted (characters, not UTF-16 units)', async () => {
    const response = await post(server, [task({ positivePrompt: '🌊'.repeat(2500) })]);
    assert.equal(response.status, 200);
  });

  test('a series can be asked with numberResults equal to seriesAmount', async () => {
    const response = await post(server, [task({ numberResults: 3, providerSettings: { klingai: { resultType: 'series', seriesAmount: 3 } } })]);
    assert.equal(response.status, 200);
    assert.deepEqual(response.body.data.map((i: any) => i.seriesIndex).sort(), [0, 1, 2]);
  });
});

describe('safety on inputs', () => {
  test('uploads are not classified unless KILN_SAFETY_CHECK_INPUTS is on; with it and block they are refused', async () => {
    const png = await sharp({ create: { width: 400, height: 400, channels: 3, background: '#e9c46a' } }).png().toBuffer();
    const off = await startTestServer({ KILN_SAFETY_THRESHOLD: '0', KILN_SAFETY_POLICY: 'block' });
    try {
      const response = await post(off, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: png.toString('base64') }]);
      assert.equal(response.status, 200);
      assert.equal(off.logs.filter((l) => l.msg === 'safety check').length, 0);
    } finally {
      await off.close();
    }
    const on = await startTestServer({ KILN_SAFETY_THRESHOLD: '0', KILN_SAFETY_POLICY: 'block', KILN_SAFETY_CHECK_INPUTS: 'true' });
    try {
      const upload = await post(on, [{ taskType: 'imageUpload', taskUUID: randomUUID(), image: png.toString('base64') }]);
      assert.equal(upload.status, 400);
      assert.equal(upload.body.errors[0].code, 'nsfwContentDetected');
      const reference = await post(on, [task({ inputs: { referenceImages: [png.toString('base64')] } })]);
      assert.equal(reference.body.errors[0].code, 'nsfwContentDetected');
      assert.equal(reference.body.errors[0].parameter, 'inputs.referenceImages[0]');
    } finally {
      await on.close();
    }
  });
});

describe('a run that resumes a task with nothing left to make', () => {
  test('every image had failed before the crash: the resumed run ends the task failed, not done', async () => {
    const receiver = await Receiver.start(() => 404);
    let server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' });
    const dataDir = server.dataDir;
    try {
      // Both images fail (the reference cannot be fetched) and the task ends failed.
      const t = task({ numberResults: 2, inputs: { referenceImages: [`${receiver.url}/missing.png`] } });
      const answer = await post(server, [t]);
      assert.ok(answer.body.errors?.length >= 1 && !answer.body.data?.length, JSON.stringify(answer.body));
      await server.close({ keepData: true });
      // As if the process had died after settling both images and before ending the task.
      const key = String(t.taskUUID).toLowerCase();
      const db = new Database(path.join(dataDir, 'kiln.sqlite'));
      try {
        assert.equal((db.prepare('SELECT status FROM tasks WHERE task_uuid = ?').get(key) as { status: string }).status, 'failed');
        db.prepare("UPDATE tasks SET status = 'running', finished_at = NULL, expires_at = NULL WHERE task_uuid = ?").run(key);
      } finally {
        db.close();
      }
      server = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true' }, { dataDir });
      let status = 'running';
      for (let i = 0; i < 100 && status === 'running'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const check = new Database(path.join(dataDir, 'kiln.sqlite'), { readonly: true });
        try {
          status = (check.prepare('SELECT status FROM tasks WHERE task_uuid = ?').get(key) as { status: string }).status;
        } finally {
          check.close();
        }
      }
      assert.equal(status, 'failed');
      const polled = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
      assert.ok(polled.body.errors?.length >= 1, JSON.stringify(polled.body));
      assert.deepEqual(polled.body.data ?? [], [], 'no image was made');
    } finally {
      await server.close();
      await receiver.close();
    }
  });
});

describe('an image whose row cannot be written', () => {
  test('leaves no bytes behind: the image fails, and the object store holds nothing for it', async () => {
    const server = await startTestServer();
    try {
      // A real SQLite refusal of every image row (as a full disk would give), from another connection.
      const db = new Database(path.join(server.dataDir, 'kiln.sqlite'));
      try {
        db.exec("CREATE TRIGGER refuse_images BEFORE INSERT ON images BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
      } finally {
        db.close();
      }
      const t = task({ numberResults: 2 });
      const answer = await post(server, [t]);
      assert.ok(answer.body.errors?.length >= 1 && !answer.body.data?.length, JSON.stringify(answer.body));
      const { readdir } = await import('node:fs/promises');
      const objects = path.join(server.dataDir, 'objects');
      const files = await readdir(objects, { recursive: true }).catch(() => [] as string[]);
      const left = [];
      for (const file of files) if (/\.(jpg|png|webp)$/.test(String(file))) left.push(file);
      assert.deepEqual(left, [], 'no image bytes without a row');
    } finally {
      await server.close();
    }
  });
});
