import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { Webhook } from 'standardwebhooks';
import { ManualClock } from '../src/shared/clock.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const SECRET = `whsec_${Buffer.from('kiln-test-webhook-secret-32-bytes!!').toString('base64')}`;
const task = (extra: Record<string, unknown> = {}) => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'terraced hills with lanterns at dusk, saffron and jade',
  width: 256,
  height: 192,
  ...extra,
});

async function pollUntilDone(server: TestServer, taskUUID: string, expected: number): Promise<any[]> {
  const seen: any[] = [];
  for (let i = 0; i < 600; i++) {
    const response = await post(server, [{ taskType: 'getResponse', taskUUID }]);
    seen.push(response.body);
    const done = (response.body.data ?? []).filter((item: any) => item.status === 'success').length + (response.body.errors?.length ?? 0);
    if (done >= expected) return seen;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('task did not finish');
}

describe('async delivery', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      KILN_ALLOW_PRIVATE_URLS: 'true',
      KILN_WEBHOOK_SECRET: SECRET,
      KILN_RETRY_BASE_MS: '40',
      KILN_RETRY_MAX_MS: '200',
      KILN_WEBHOOK_TIMEOUT_MS: '400',
      KILN_WEBHOOK_MAX_ATTEMPTS: '5',
      KILN_UPLOAD_MAX_ATTEMPTS: '3',
      KILN_UPLOAD_TIMEOUT_MS: '2000',
    });
  });
  after(() => server.close());

  test('getResponse shows processing, then partial, then all 4 results in a stable order', async () => {
    const t = task({ deliveryMethod: 'async', numberResults: 4, width: 2048, height: 2048 });
    const ack = await post(server, [t]);
    assert.deepEqual(ack.body, { data: [{ taskType: 'imageInference', taskUUID: t.taskUUID }] });
    const polls = await pollUntilDone(server, t.taskUUID, 4);
    const counts = polls.map((p) => p.data.filter((i: any) => i.status === 'success').length);
    assert.ok(polls.every((p) => p.data.length === 4), 'one item per expected image in every poll');
    assert.ok(counts.some((c) => c > 0 && c < 4), `saw partial results (${counts.join(',')})`);
    const final = polls.at(-1).data;
    assert.equal(new Set(final.map((i: any) => i.imageUUID)).size, 4);
    // Stable order: an image, once finished, keeps its position.
    for (const poll of polls) {
      poll.data.forEach((item: any, index: number) => {
        if (item.status === 'success') assert.equal(item.imageUUID, final[index].imageUUID);
      });
    }
  });

  test('a task submitted over WebSocket is polled over REST', async () => {
    const client = await RawWsClient.connect(server.wsUrl);
    await client.authenticate(TEST_KEY);
    const t = task({ deliveryMethod: 'async', numberResults: 2 });
    client.send([t]);
    await client.next(client.forTask(t.taskUUID));
    client.close();
    const polls = await pollUntilDone(server, t.taskUUID, 2);
    assert.equal(polls.at(-1).data.filter((i: any) => i.status === 'success').length, 2);
  });

  test('a webhook that fails 3 times gets exactly one accepted, signed delivery per image', async () => {
    const receiver = await Receiver.start((request) => {
      const id = request.headers['webhook-id'];
      const previous = receiver.requests.filter((r) => r.headers['webhook-id'] === id).length;
      return previous <= 3 ? 500 : 200;
    });
    try {
      const t = task({ webhookURL: `${receiver.url}/hook?token=abc`, numberResults: 2 });
      const ack = await post(server, [t]);
      assert.deepEqual(ack.body.data, [{ taskType: 'imageInference', taskUUID: t.taskUUID }], 'a webhook alone means an ack');
      await receiver.waitFor(8);
      const verifier = new Webhook(SECRET);
      const ids = new Set<string>();
      const images = new Set<string>();
      for (const request of receiver.requests) {
        assert.equal(request.method, 'POST');
        assert.equal(request.url, '/hook?token=abc');
        assert.equal(request.headers['content-type'], 'application/json');
        assert.equal(request.headers['x-kiln-delivery'], request.headers['webhook-id']);
        const payload = verifier.verify(request.body.toString(), request.headers as Record<string, string>) as any;
        assert.equal(payload.data.length, 1);
        assert.equal(payload.data[0].taskUUID, t.taskUUID);
        ids.add(String(request.headers['webhook-id']));
        images.add(payload.data[0].imageUUID);
      }
      assert.equal(ids.size, 2, 'one delivery id per image');
      assert.equal(images.size, 2);
      assert.equal(receiver.requests.length, 8, 'three failures and one success for each image');
    } finally {
      await receiver.close();
    }
  });

  test('a webhook that never answers gets bounded attempts, and the task still succeeds', async () => {
    const receiver = await Receiver.start(() => 'hang');
    try {
      const t = task({ webhookURL: `${receiver.url}/slow` });
      await post(server, [t]);
      await receiver.waitFor(5);
      const polls = await pollUntilDone(server, t.taskUUID, 1);
      assert.equal(polls.at(-1).data[0].status, 'success');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.equal(receiver.requests.length, 5, 'no attempt beyond KILN_WEBHOOK_MAX_ATTEMPTS');
      assert.equal(new Set(receiver.requests.map((r) => r.headers['webhook-id'])).size, 1);
    } finally {
      await receiver.close();
    }
  });

  test('a receiver that answers 200 with an endless body counts as delivered at once', async () => {
    const receiver = await Receiver.start(() => 'drip');
    try {
      const t = task({ webhookURL: `${receiver.url}/flood`, deliveryMethod: 'sync' });
      const response = await post(server, [t]);
      assert.equal(response.status, 200);
      await receiver.waitFor(1);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.equal(receiver.requests.length, 1, 'no retry: the 2xx status is what counts');
    } finally {
      await receiver.close();
    }
  });

  test('uploadEndpoint gets a PUT of the raw bytes with type and length', async () => {
    const receiver = await Receiver.start(() => 200);
    try {
      const t = task({ uploadEndpoint: `${receiver.url}/bucket/out.png?X-Amz-Signature=abc`, outputFormat: 'PNG' });
      const response = await post(server, [t]);
      assert.equal(response.status, 200);
      assert.equal(response.body.errors, undefined);
      await receiver.waitFor(1);
      assert.equal(receiver.requests.length, 1);
      const put = receiver.requests[0]!;
      assert.equal(put.method, 'PUT');
      assert.equal(put.url, '/bucket/out.png?X-Amz-Signature=abc');
      assert.equal(put.headers['content-type'], 'image/png');
      assert.equal(Number(put.headers['content-length']), put.body.length);
      const meta = await sharp(put.body).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 256, 192]);
    } finally {
      await receiver.close();
    }
  });

  test('an upload answered 403 is reported as uploadFailed and the image is still served', async () => {
    const receiver = await Receiver.start(() => 403);
    try {
      const t = task({ uploadEndpoint: `${receiver.url}/denied` });
      const response = await post(server, [t]);
      assert.equal(response.status, 200);
      assert.equal(response.body.data.length, 1);
      // The sync reply does not wait for the upload: its outcome follows through getResponse.
      assert.equal(response.body.errors, undefined);
      assert.equal((await fetch(response.body.data[0].imageURL)).status, 200);
      let poll = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
      for (let i = 0; i < 100 && !poll.body.errors; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        poll = await post(server, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
      }
      const [error] = poll.body.errors;
      assert.equal(error.code, 'uploadFailed');
      assert.equal(error.status, 'error');
      assert.equal(error.taskUUID, t.taskUUID);
      assert.equal(error.imageUUID, response.body.data[0].imageUUID);
      assert.equal(receiver.requests.length, 1, '403 is final');
    } finally {
      await receiver.close();
    }
  });

  test('an upload endpoint that keeps failing does not hold the sync reply', async () => {
    // Retries 2 s apart: the reply must not wait for them.
    const slow = await startTestServer({ KILN_ALLOW_PRIVATE_URLS: 'true', KILN_RETRY_SCHEDULE: '2s', KILN_UPLOAD_MAX_ATTEMPTS: '3' });
    const receiver = await Receiver.start(() => 503);
    try {
      const t = task({ uploadEndpoint: `${receiver.url}/flaky` });
      const response = await post(slow, [t]);
      assert.equal(response.status, 200);
      assert.equal(response.body.data.length, 1);
      assert.equal(response.body.errors, undefined);
      const poll = await post(slow, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
      assert.equal(poll.body.data[0].imageUUID, response.body.data[0].imageUUID);
      assert.equal(poll.body.errors, undefined, 'the upload is still being retried');
      assert.ok(receiver.requests.length <= 1, `${receiver.requests.length} attempts before the reply`);
    } finally {
      await receiver.close();
      await slow.close();
    }
  });

  test('queue capacity gives 429 queueFull and the server keeps serving', async () => {
    const small = await startTestServer({ KILN_QUEUE_MAX: '1', KILN_QUEUE_CONCURRENCY: '1' });
    try {
      const responses = await Promise.all(
        [0, 1, 2].map(() => post(small, [task({ deliveryMethod: 'async', width: 4096, height: 4096, model: 'klingai:kling-image@o3' })])),
      );
      const refused = responses.filter((r) => r.status === 429);
      assert.ok(refused.length >= 1, `statuses ${responses.map((r) => r.status).join(',')}`);
      assert.equal(refused[0]!.body.errors[0].code, 'queueFull');
      assert.equal((await post(small, [{ taskType: 'ping', ping: true }])).status, 200);
    } finally {
      await small.close();
    }
  });
});

describe('delivery targets', () => {
  test('private, loopback and link-local webhook and upload targets are refused at validation', async () => {
    const server = await startTestServer();
    try {
      for (const [field, url, code] of [
        ['webhookURL', 'http://127.0.0.1:9/hook', 'invalidWebhookURL'],
        ['webhookURL', 'http://10.1.2.3/hook', 'invalidWebhookURL'],
        ['uploadEndpoint', 'http://169.254.169.254/latest', 'invalidUploadEndpoint'],
        ['uploadEndpoint', 'http://[::1]:9/put', 'invalidUploadEndpoint'],
        ['webhookURL', 'http://localhost:9/hook', 'invalidWebhookURL'],
      ] as const) {
        const t = task({ [field]: url });
        const response = await post(server, [t]);
        assert.equal(response.status, 400, url);
        assert.equal(response.body.errors[0].code, code, url);
        assert.equal(response.body.errors[0].parameter, field);
        assert.equal(response.body.errors[0].taskUUID, t.taskUUID);
      }
    } finally {
      await server.close();
    }
  });
});

describe('ttl', () => {
  test('a URL with ttl 60 answers 200 before and 404 after, its bytes are deleted, and the task expires after its retention', async () => {
    const clock = new ManualClock(Date.now());
    const server = await startTestServer({}, { clock });
    try {
      const response = await post(server, [task({ ttl: 60 })]);
      const url = response.body.data[0].imageURL as string;
      assert.equal((await fetch(url)).status, 200);
      const file = path.join(server.dataDir, 'objects', new URL(url).pathname.split('/').pop()!.slice(0, 2), new URL(url).pathname.split('/').pop()!);
      assert.ok(existsSync(file));
      clock.advance(59_000);
      assert.equal((await fetch(url)).status, 200);
      clock.advance(2_000);
      assert.equal((await fetch(url)).status, 404);
      await server.kiln.sweep();
      assert.ok(!existsSync(file), 'the sweeper deleted the bytes');
      const taskUUID = response.body.data[0].taskUUID;
      assert.equal((await post(server, [{ taskType: 'getResponse', taskUUID }])).status, 200, 'the task outlives its URL');
      clock.advance(24 * 3_600_000);
      assert.equal((await post(server, [{ taskType: 'getResponse', taskUUID }])).body.errors[0].code, 'taskNotFound');
      await server.kiln.sweep();
      assert.equal((await post(server, [{ taskType: 'getResponse', taskUUID }])).status, 404, 'the record is gone after the sweep');
    } finally {
      await server.close();
    }
  });
});
