/**
 * Kiln scaled out for real: 2 `kiln api` + 2 `kiln worker` child processes on one Redis, a
 * fresh PostgreSQL database and an S3 server on loopback, driven by the real Runware clients.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;
import { createRunware } from '@runware/ai-sdk-provider';
import { RunwareServer } from '@runware/sdk-js';
import { generateImage } from 'ai';
import pg from 'pg';
import sharp from 'sharp';
import { startCluster, type Cluster } from './helpers/cluster.ts';
import { post, TEST_KEY } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';
import { serviceProblem } from './helpers/services.ts';
import { RawWsClient } from './helpers/ws-client.ts';

const DEV = 'kiln:studio@1';
const skip = (await serviceProblem('redis')) ?? (await serviceProblem('postgres'));

const task = (fields: Record<string, unknown> = {}): Record<string, unknown> => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: DEV,
  positivePrompt: 'a harbour of glass boats at dawn',
  width: 256,
  height: 256,
  ...fields,
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** getResponse's successes once `count` of the task's images are done. */
async function successes(server: { url: string }, taskUUID: string, count: number, timeoutMs?: number): Promise<any[]> {
  return until(
    `${count} results of ${taskUUID}`,
    async () => {
      const response = await post(server, [{ taskType: 'getResponse', taskUUID }]);
      const done = (response.body.data ?? []).filter((item: any) => item.status === 'success');
      return done.length >= count ? done : undefined;
    },
    timeoutMs,
  );
}

describe('a real cluster: 2 api + 2 workers on Redis, PostgreSQL and S3', { skip, timeout: 300_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(() => cluster?.close());

  test('@runware/sdk-js over WebSocket against each API process; images are served from S3 by either', async () => {
    for (const api of cluster.apis) {
      const runware = new RunwareServer({ apiKey: TEST_KEY, url: `${api.url.replace(/^http/, 'ws')}/v1`, shouldReconnect: false, timeoutDuration: 60_000 });
      try {
        await runware.ensureConnection();
        const images = (await runware.requestImages({ model: DEV, positivePrompt: 'copper dunes under twin moons', width: 256, height: 192, numberResults: 2 })) as any[];
        assert.equal(images.length, 2);
        assert.notEqual(images[0].imageUUID, images[1].imageUUID);
        for (const image of images) {
          for (const server of cluster.apis) {
            const response = await fetch(image.imageURL.replace(cluster.env.KILN_PUBLIC_URL, server.url));
            assert.equal(response.status, 200);
            const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
            assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 256, 192]);
          }
          // The bytes live in the bucket, not on any process's disk.
          assert.ok(await cluster.s3.getObject(`${image.imageUUID}.jpg`));
        }
      } finally {
        await runware.disconnect();
      }
    }
  });

  test('@runware/ai-sdk-provider over REST against each API process', async () => {
    for (const api of cluster.apis) {
      const runware = createRunware({ apiKey: TEST_KEY, baseURL: `${api.url}/v1` });
      const result = await generateImage({ model: runware.image(DEV), prompt: 'a forest of copper towers', size: '256x256', n: 2, maxRetries: 0 });
      assert.equal(result.images.length, 2);
      for (const image of result.images) {
        const meta = await sharp(Buffer.from(image.uint8Array)).metadata();
        assert.deepEqual([meta.width, meta.height], [256, 256]);
      }
    }
  });

  test('async submit on one API process, getResponse on the other', async () => {
    const [a, b] = cluster.apis as [Cluster['apis'][0], Cluster['apis'][0]];
    const t = task({ deliveryMethod: 'async', numberResults: 3 });
    const ack = await post(a, [t]);
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    assert.equal(ack.body.data[0].taskUUID, t.taskUUID);
    const done = await successes(b, t.taskUUID as string, 3);
    assert.equal(new Set(done.map((item) => item.imageUUID)).size, 3);
    // taskUUIDs are case-insensitive on PostgreSQL too.
    const upper = await post(b, [{ taskType: 'getResponse', taskUUID: (t.taskUUID as string).toUpperCase() }]);
    assert.equal(upper.body.data.length, 3);
    // The same task resent (in another case) is acknowledged again; another body is a conflict.
    const again = await post(b, [{ ...t, taskUUID: (t.taskUUID as string).toUpperCase() }]);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.data[0].taskUUID, (t.taskUUID as string).toUpperCase());
    const other = await post(b, [{ ...t, taskUUID: (t.taskUUID as string).toUpperCase(), positivePrompt: 'another prompt' }]);
    assert.equal(other.body.errors[0].code, 'conflictTaskUUID');
    const after = await post(a, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
    assert.deepEqual(
      after.body.data.map((item: any) => item.imageUUID).sort(),
      done.map((item) => item.imageUUID).sort(),
      'the same images: nothing ran twice',
    );
  });

  test('4 images with a webhook and 2 workers: exactly one accepted POST per image', async () => {
    const receiver = await Receiver.start(() => 200);
    try {
      const t = task({ deliveryMethod: 'async', numberResults: 4, webhookURL: `${receiver.url}/hook` });
      const ack = await post(cluster.apis[0]!, [t]);
      assert.equal(ack.status, 200, JSON.stringify(ack.body));
      await until('4 webhooks', async () => (receiver.requests.length >= 4 ? true : undefined));
      // Give a duplicate every chance to show up: pollers on both workers run every second.
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      assert.equal(receiver.requests.length, 4);
      const ids = new Set(receiver.requests.map((r) => r.headers['webhook-id']));
      const images = new Set(receiver.requests.map((r) => JSON.parse(r.body.toString()).data[0].imageUUID));
      assert.equal(ids.size, 4);
      assert.equal(images.size, 4);
    } finally {
      await receiver.close();
    }
  });

  test('SIGKILL of the worker running a 4×4K task: it finishes on the other worker, no image made twice', async () => {
    const t = task({ deliveryMethod: 'async', numberResults: 4, width: 4096, height: 4096, positivePrompt: 'a storm over basalt cliffs' });
    const taskUUID = t.taskUUID as string;
    const ack = await post(cluster.apis[0]!, [t]);
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    const claimedBy = (worker: Cluster['workers'][0]): boolean => worker.logs.some((line) => line.msg === 'task claimed' && line.taskUUID === taskUUID);
    const running = await until('a worker to claim the task', async () => cluster.workers.find(claimedBy));
    const first = await successes(cluster.apis[1]!, taskUUID, 1, 120_000);
    await running.kill('SIGKILL');
    const survivor = cluster.workers.find((w) => w !== running)!;
    const done = await successes(cluster.apis[1]!, taskUUID, 4, 180_000);
    assert.ok(claimedBy(survivor), 'the other worker took the task over');
    const uuids = done.map((item) => item.imageUUID);
    assert.equal(new Set(uuids).size, 4);
    // What was finished before the kill was not made again…
    for (const item of first) assert.ok(uuids.includes(item.imageUUID));
    // …and the store settled each of the four generations once, with the images delivered. (An
    // image the killed worker had stored but not yet settled is made again: it was not finished.)
    const client = new pg.Client({ connectionString: cluster.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query("SELECT image_uuid FROM generations WHERE task_uuid = $1 AND status = 'success' ORDER BY idx", [taskUUID]);
      assert.deepEqual(new Set(rows.map((row) => row.image_uuid)), new Set(uuids));
    } finally {
      await client.end();
    }
    cluster.workers.splice(cluster.workers.indexOf(running), 1);
    await cluster.addWorker();
  });

  test('SIGTERM of a worker mid-task hands the task back: it exits 0 and the task finishes on the other worker', async () => {
    const t = task({ deliveryMethod: 'async', numberResults: 4, width: 4096, height: 4096, positivePrompt: 'a glacier at noon' });
    const taskUUID = t.taskUUID as string;
    const ack = await post(cluster.apis[0]!, [t]);
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    const claimedBy = (worker: Cluster['workers'][0]): boolean => worker.logs.some((line) => line.msg === 'task claimed' && line.taskUUID === taskUUID);
    const running = await until('a worker to claim the task', async () => cluster.workers.find(claimedBy));
    await successes(cluster.apis[0]!, taskUUID, 1, 120_000);
    const exit = await running.kill('SIGTERM');
    assert.equal(exit.code, 0);
    const survivor = cluster.workers.find((w) => w !== running)!;
    const done = await successes(cluster.apis[0]!, taskUUID, 4, 180_000);
    assert.equal(new Set(done.map((item) => item.imageUUID)).size, 4);
    assert.ok(claimedBy(survivor), 'the other worker took the task over');
    cluster.workers.splice(cluster.workers.indexOf(running), 1);
    await cluster.addWorker();
  });

  test('SIGKILL of the API process holding a sync WebSocket client: the session resumes on the other one', async () => {
    const doomed = cluster.apis[1]!;
    const client = await RawWsClient.connect(`${doomed.url.replace(/^http/, 'ws')}/v1`);
    const auth = await client.authenticate(TEST_KEY);
    const sessionId = auth.data[0].connectionSessionUUID as string;
    const t = task({ numberResults: 4, width: 4096, height: 4096, positivePrompt: 'lantern village at night' });
    client.send([t]);
    const firstFrame = await client.next(client.forTask(t.taskUUID as string), 120_000);
    await doomed.kill('SIGKILL');
    await client.closed;
    // What reached the client before its API process died (the frame awaited, and any after it).
    const received: string[] = [firstFrame, ...client.frames.filter(client.forTask(t.taskUUID as string))].map((f) => f.data[0].imageUUID);
    assert.ok(received.length < 4, 'the kill came while the task was still running');
    const resumed = await RawWsClient.connect(`${cluster.apis[0]!.url.replace(/^http/, 'ws')}/v1`);
    try {
      const again = await resumed.authenticate(TEST_KEY, sessionId);
      assert.equal(again.data[0].connectionSessionUUID, sessionId);
      // Delivery on takeover is at least once: a frame that reached the client just before its
      // process died may come again (same imageUUID); nothing may be missing or made twice.
      const all = new Set(received);
      while (all.size < 4) {
        const frame = await resumed.next(resumed.forTask(t.taskUUID as string), 120_000);
        assert.equal(frame.errors, undefined, JSON.stringify(frame));
        all.add(frame.data[0].imageUUID);
      }
      const state = await post(cluster.apis[0]!, [{ taskType: 'getResponse', taskUUID: t.taskUUID }]);
      assert.deepEqual(new Set(state.body.data.map((item: any) => item.imageUUID)), all, 'the client has exactly the task\'s four images');
    } finally {
      resumed.close();
    }
  });
});
