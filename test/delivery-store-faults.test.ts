/**
 * The delivery service when its store fails: a store error stops one delivery's run (never the
 * process, never with an immediate second send), and the delivery is taken up again later.
 * A real SQLite store with one method made to fail, a real receiver on loopback.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DeliveryService } from '../src/delivery/delivery-service.ts';
import type { RetryPolicy } from '../src/delivery/retry-policy.ts';
import { createSafeFetch } from '../src/net/safe-fetch.ts';
import { systemClock } from '../src/shared/clock.ts';
import { LocalObjectStore } from '../src/store/object-store.ts';
import { openTaskStore } from '../src/store/open-task-store.ts';
import type { DeliveryRecord, TaskStore } from '../src/store/task-store.ts';
import { Receiver } from './helpers/receiver.ts';
import { recordingLogger } from './helpers/recording-logger.ts';

const POLICY: RetryPolicy = { maxAttempts: 5, timeoutMs: 2_000, scheduleMs: [50], baseDelayMs: undefined, maxDelayMs: 50 };

/** The store with `method` failing while `failing()` says so (everything else is the real store). */
function failingWhile<K extends keyof TaskStore>(store: TaskStore, method: K, failing: (...args: Parameters<Extract<TaskStore[K], (...a: never[]) => unknown>>) => boolean): TaskStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== method || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return (...args: never[]) => {
        if ((failing as (...a: never[]) => boolean)(...args)) return Promise.reject(new Error('Connection terminated unexpectedly'));
        return (value as (...a: never[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('deliveries when the store fails', () => {
  let dir: string;
  let store: TaskStore;
  let receiver: Receiver;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-delivery-faults-'));
    store = await openTaskStore({ sqliteFile: path.join(dir, 'kiln.sqlite') });
    receiver = await Receiver.start(() => 200);
  });
  after(async () => {
    await receiver.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function webhook(): Promise<DeliveryRecord> {
    const taskUUID = randomUUID();
    const now = Date.now();
    await store.insertTask(
      { taskUUID, apiKeyId: 'key-1', taskType: 'imageInference', model: 'kiln:studio@1', engine: 'studio', request: '{}', status: 'done', imageCount: 1, createdAt: now, updatedAt: now, finishedAt: now, expiresAt: null },
      [{ taskUUID, index: 0, seed: 1, seriesIndex: null, status: 'pending', imageUUID: null, error: null, cost: null, nsfw: null, finishedAt: null }],
    );
    const record: DeliveryRecord = {
      id: randomUUID(),
      taskUUID,
      apiKeyId: 'key-1',
      kind: 'webhook',
      url: `${receiver.url}/hook/${taskUUID}`,
      imageUUID: null,
      body: JSON.stringify({ data: [{ taskUUID }] }),
      objectKey: null,
      notifyUrl: null,
      status: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      createdAt: now,
    };
    await store.insertDeliveries([record]);
    return record;
  }

  function service(withStore: TaskStore, errors: string[], pollIntervalMs?: number): DeliveryService {
    return new DeliveryService({
      store: withStore,
      objects: new LocalObjectStore(path.join(dir, 'objects')),
      clock: systemClock,
      logger: recordingLogger(errors),
      http: createSafeFetch({ allowPrivate: true }),
      webhook: POLICY,
      upload: POLICY,
      webhookSecrets: async () => ['whsec_' + Buffer.from('a secret of thirty-two bytes!!!!').toString('base64')],
      owner: randomUUID(),
      graceMs: 0,
      ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
    });
  }

  test('a delivered webhook whose outcome cannot be written is not sent again at once', async () => {
    const record = await webhook();
    const errors: string[] = [];
    let doneWrites = 0;
    const deliveries = service(
      failingWhile(store, 'updateDelivery', (_id, update) => update.status === 'done' && doneWrites++ === 0),
      errors,
    );
    try {
      await deliveries.dispatch([record]);
      const path = `/hook/${record.taskUUID}`;
      await receiver.waitFor(1, (r) => r.url === path, 5_000);
      // Several retry delays (50 ms) later: still the one POST, and the error was logged.
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(receiver.requests.filter((r) => r.url === path).length, 1, 'sent once: a store error after a 2xx is not a failed send');
      assert.equal(doneWrites, 1, 'the outcome was written once (and failed)');
      assert.ok(errors.some((message) => /store error/.test(message)), `the error was logged: ${JSON.stringify(errors)}`);
      // The row keeps its lease (it is still pending), so no poller sends it before the lease runs out.
      const stored = await store.getDelivery(record.id);
      assert.equal(stored?.status, 'pending');
    } finally {
      await deliveries.close();
    }
  });

  test('a lease that cannot be taken stops that run, not the process, and a later poll sends the delivery', async () => {
    const record = await webhook();
    const errors: string[] = [];
    let storeDown = true;
    const deliveries = service(failingWhile(store, 'claimDelivery', () => storeDown), errors, 100);
    try {
      // As a task's end dispatches its webhooks: the run fails on the store, and nothing rejects unhandled.
      const failed = await deliveries.dispatch([record]);
      assert.deepEqual(failed, []);
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.ok(errors.some((message) => /store error/.test(message)), `the error was logged: ${JSON.stringify(errors)}`);
      const path = `/hook/${record.taskUUID}`;
      assert.equal(receiver.requests.filter((r) => r.url === path).length, 0);
      // The store is back: the service's poll finds the delivery still pending and sends it.
      storeDown = false;
      await deliveries.start();
      await receiver.waitFor(1, (r) => r.url === path, 5_000);
      for (let i = 0; i < 50; i++) {
        const stored = await store.getDelivery(record.id);
        if (stored?.status === 'done') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const stored = await store.getDelivery(record.id);
      assert.equal(stored?.status, 'done');
      assert.equal(receiver.requests.filter((r) => r.url === path).length, 1);
    } finally {
      await deliveries.close();
    }
  });
});
