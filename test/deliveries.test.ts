import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { runDeliveriesCommand } from '../src/cli/deliveries-command.ts';
import { loadConfig } from '../src/config/config.ts';
import { backoffDelay, retrySpanMs } from '../src/delivery/retry-policy.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { Receiver } from './helpers/receiver.ts';

const OTHER_KEY = 'kiln_other_key_0123456789abcdefghijklmn';

describe('the delivery log: getDeliveries, redeliver, kiln deliveries', () => {
  let server: TestServer;
  let receiver: Receiver;
  let taskUUID: string;
  let deliveryId: string;
  before(async () => {
    // Retries 300 ms apart, so a receiver that is down for its first two attempts is quick to test.
    server = await startTestServer({ KILN_API_KEYS: `${TEST_KEY},${OTHER_KEY}`, KILN_ALLOW_PRIVATE_URLS: 'true', KILN_RETRY_SCHEDULE: '300ms' });
    receiver = await Receiver.start((_request, index) => (index < 2 ? 503 : 200));
    taskUUID = randomUUID();
    const ack = await post(server, [
      {
        taskType: 'imageInference',
        taskUUID,
        model: 'kiln:studio@1',
        positivePrompt: 'a windmill on a hill',
        width: 128,
        height: 128,
        webhookURL: `${receiver.url}/hook?token=secret`,
      },
    ]);
    assert.equal(ack.status, 200);
    await receiver.waitFor(3);
  });
  after(async () => {
    await receiver.close();
    await server.close();
  });

  const deliveries = async (key = TEST_KEY) => post(server, [{ taskType: 'getDeliveries', taskUUID }], { key });

  test('a receiver down for the first attempts: every attempt is listed with its outcome', async () => {
    let answer = await deliveries();
    // The third attempt's log line is written right after the receiver answered it.
    for (let i = 0; i < 50 && answer.body.data[0].deliveries[0].attempts.length < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      answer = await deliveries();
    }
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const [item] = answer.body.data;
    assert.equal(item.taskType, 'getDeliveries');
    assert.equal(item.taskUUID, taskUUID);
    assert.equal(item.deliveries.length, 1);
    const delivery = item.deliveries[0];
    deliveryId = delivery.deliveryId;
    assert.equal(delivery.kind, 'webhook');
    assert.equal(delivery.host, new URL(receiver.url).host, 'the receiver by host only: no path, no token');
    assert.equal(delivery.status, 'done');
    assert.deepEqual(delivery.attempts.map((a: any) => a.attempt), [1, 2, 3]);
    assert.deepEqual(delivery.attempts.map((a: any) => a.httpStatus), [503, 503, 200]);
    assert.match(delivery.attempts[0].error, /503/);
    assert.equal(delivery.attempts[2].error, undefined);
    for (const attempt of delivery.attempts) {
      assert.ok(Number.isInteger(attempt.latencyMs) && attempt.latencyMs >= 0);
      assert.ok(Date.parse(attempt.at) > 0);
    }
    assert.ok(Date.parse(delivery.attempts[1].at) - Date.parse(delivery.attempts[0].at) >= 250, 'the schedule spaced the retries');
    // Every attempt carried the same delivery id.
    assert.deepEqual(new Set(receiver.requests.map((r) => r.headers['webhook-id'])), new Set([deliveryId]));
  });

  test('redeliver sends it again under the same webhook-id, and the log continues', async () => {
    const answer = await post(server, [{ taskType: 'redeliver', deliveryId }]);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.data[0], { taskType: 'redeliver', deliveryId, taskUUID, kind: 'webhook', status: 'pending' });
    await receiver.waitFor(4);
    const again = receiver.requests[3]!;
    assert.equal(again.headers['webhook-id'], deliveryId);
    assert.equal(again.body.toString(), receiver.requests[2]!.body.toString(), 'the same body');
    let log = await deliveries();
    for (let i = 0; i < 50 && log.body.data[0].deliveries[0].attempts.length < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      log = await deliveries();
    }
    const delivery = log.body.data[0].deliveries[0];
    assert.deepEqual(delivery.attempts.map((a: any) => a.attempt), [1, 2, 3, 4]);
    assert.equal(delivery.status, 'done');
  });

  test("another key sees and redelivers nothing of this task's", async () => {
    const seen = await deliveries(OTHER_KEY);
    assert.equal(seen.status, 404);
    assert.equal(seen.body.errors[0].code, 'taskNotFound');
    const sent = await post(server, [{ taskType: 'redeliver', deliveryId }], { key: OTHER_KEY });
    assert.equal(sent.status, 404);
    assert.equal(sent.body.errors[0].parameter, 'deliveryId');
  });

  test('kiln deliveries <taskUUID> prints the same log from the store', async () => {
    let out = '';
    let err = '';
    const io = { env: { KILN_DATA_DIR: server.dataDir }, out: (text: string) => (out += text), err: (text: string) => (err += text) };
    assert.equal(await runDeliveriesCommand([taskUUID], io), 0, err);
    assert.match(out, new RegExp(`webhook ${deliveryId} → 127\\.0\\.0\\.1:\\d+ \\(image [0-9a-f-]{36}\\): done`));
    assert.match(out, /#1 .* HTTP 503/);
    assert.match(out, /#3 .* HTTP 200/);
    assert.doesNotMatch(out, /token=secret/);
    out = '';
    assert.equal(await runDeliveriesCommand([taskUUID, '--json'], io), 0);
    assert.equal(JSON.parse(out.trim()).attempts.length >= 3, true);
    assert.equal(await runDeliveriesCommand([randomUUID()], io), 1);
    assert.equal(await runDeliveriesCommand([], io), 2);
  });
});

describe('the default retry schedule', () => {
  test('spans more than half an hour, so a receiver down for 15 minutes still gets every delivery', () => {
    const config = loadConfig({});
    for (const policy of [config.webhookRetry, config.uploadRetry]) {
      assert.ok(retrySpanMs(policy) >= 30 * 60_000, `${retrySpanMs(policy)} ms`);
      // Planned delays: 5 s, 30 s, 2 min, 10 min, 30 min, then hourly.
      assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((k) => backoffDelay(policy, k, () => 0)), [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000, 3_600_000]);
      // The attempt after a 15-minute outage is still within the schedule.
      let elapsed = 0;
      let attempt = 1;
      while (elapsed <= 15 * 60_000) elapsed += backoffDelay(policy, attempt++, () => 0);
      assert.ok(attempt <= policy.maxAttempts, `attempt ${attempt} of ${policy.maxAttempts}`);
    }
  });

  test('KILN_RETRY_SCHEDULE takes durations; KILN_RETRY_BASE_MS switches to doubling', () => {
    const scheduled = loadConfig({ KILN_RETRY_SCHEDULE: '250ms, 2s,1.5m, 1h' }).webhookRetry;
    assert.deepEqual(scheduled.scheduleMs, [250, 2_000, 90_000, 3_600_000]);
    const doubling = loadConfig({ KILN_RETRY_BASE_MS: '100', KILN_RETRY_MAX_MS: '400' }).webhookRetry;
    assert.deepEqual([1, 2, 3, 4].map((k) => backoffDelay(doubling, k, () => 1)), [100, 200, 400, 400]);
    assert.throws(() => loadConfig({ KILN_RETRY_SCHEDULE: '5 parsecs' }), /KILN_RETRY_SCHEDULE/);
  });
});
