/**
 * Redis stops answering for 10 s under a running cluster (its own redis-server, frozen with
 * SIGSTOP, so the shared one is never touched): API processes answer a retryable 503 instead of
 * hanging and store nothing for what they refuse; workers pause; when Redis is back, accepted
 * work finishes by itself.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { freePorts, startCluster, type Cluster } from './helpers/cluster.ts';
import { post } from './helpers/kiln-server.ts';
import { serviceProblem, startPrivateRedis } from './helpers/services.ts';

const skip = (await serviceProblem('redis')) ?? (await serviceProblem('postgres'));

const task = (fields: Record<string, unknown> = {}): Record<string, unknown> => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: 'a quiet harbour in fog',
  width: 512,
  height: 512,
  ...fields,
});

describe('Redis frozen for 10 s under a cluster', { skip, timeout: 240_000 }, () => {
  let redis: ChildProcess;
  let cluster: Cluster;
  before(async () => {
    const [port] = await freePorts(1);
    redis = await startPrivateRedis(port!);
    cluster = await startCluster({ apis: 1, workers: 1, redisUrl: `redis://127.0.0.1:${port}/0` });
  });
  after(async () => {
    redis?.kill('SIGCONT');
    await cluster?.close();
    redis?.kill('SIGTERM');
  });

  test('503 while frozen, nothing lost, everything resumes by itself', async () => {
    const api = cluster.apis[0]!;
    const accepted = task({ deliveryMethod: 'async', numberResults: 4, width: 2048, height: 2048 });
    const ack = await post(api, [accepted]);
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    redis.kill('SIGSTOP');
    try {
      const refused = task();
      const started = performance.now();
      const response = await post(api, [refused]);
      const seconds = (performance.now() - started) / 1000;
      assert.equal(response.status, 503, JSON.stringify(response.body));
      assert.equal(response.body.errors[0].code, 'serviceUnavailable');
      assert.equal(response.body.errors[0].taskUUID, refused.taskUUID);
      assert.ok(seconds < 8, `answered after ${seconds.toFixed(1)} s`);
      // The store still answers for what was accepted, and knows nothing of what was refused.
      const state = await post(api, [{ taskType: 'getResponse', taskUUID: accepted.taskUUID }]);
      assert.equal(state.status, 200);
      const unknown = await post(api, [{ taskType: 'getResponse', taskUUID: refused.taskUUID }]);
      assert.equal(unknown.body.errors[0].code, 'taskNotFound');
      await new Promise((resolve) => setTimeout(resolve, 10_000 - (performance.now() - started)));
    } finally {
      redis.kill('SIGCONT');
    }
    // The accepted task finishes, and the refused one can be sent again under the same taskUUID.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const state = await post(api, [{ taskType: 'getResponse', taskUUID: accepted.taskUUID }]);
      const done = (state.body.data ?? []).filter((item: any) => item.status === 'success').length;
      if (done === 4) break;
      assert.ok(Date.now() < deadline, `only ${done} of 4 images after Redis came back`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const again = await post(api, [task()]);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.data.length, 1);
  });
});
