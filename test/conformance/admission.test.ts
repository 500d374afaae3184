/**
 * One list of assertions for the `Admission` port, run against `MemoryAdmission` and
 * `RedisAdmission`. `open(key)` returns an adapter on the shared state named `key`: for Redis a
 * new instance each call (as another API process would be), for memory the one instance.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { AdmissionUnavailableError, type Admission } from '../../src/queue/admission.ts';
import { MemoryAdmission } from '../../src/queue/memory-admission.ts';
import { RedisAdmission } from '../../src/queue/redis-admission.ts';
import { ManualClock, type Clock } from '../../src/shared/clock.ts';
import { REDIS_DB, redisUrl, serviceProblem, uniquePrefix, closedPort, deleteRedisKeys, privateRedisProblem, startPrivateRedis } from '../helpers/services.ts';

interface AdmissionAdapter {
  readonly name: string;
  readonly skip: string | undefined;
  open(key: string, capacity: number, clock?: Clock): Admission;
  teardown(): Promise<void>;
}

const redisProblem = await serviceProblem('redis');

function memoryAdapter(): AdmissionAdapter {
  const shared = new Map<string, MemoryAdmission>();
  return {
    name: 'MemoryAdmission',
    skip: undefined,
    open(key, capacity, clock) {
      let admission = shared.get(key);
      if (!admission) {
        admission = new MemoryAdmission({ capacity, ...(clock ? { clock } : {}) });
        shared.set(key, admission);
      }
      return admission;
    },
    teardown: async () => {},
  };
}

function redisAdapter(): AdmissionAdapter {
  const url = redisUrl(REDIS_DB.admission);
  const prefix = uniquePrefix('admission');
  const opened: RedisAdmission[] = [];
  return {
    name: 'RedisAdmission',
    skip: redisProblem,
    open(key, capacity, clock) {
      const admission = new RedisAdmission({ redisUrl: url, capacity, prefix: `${prefix}:${key}`, ...(clock ? { clock } : {}) });
      opened.push(admission);
      return admission;
    },
    async teardown() {
      await Promise.all(opened.map((admission) => admission.close()));
      await deleteRedisKeys(url, `${prefix}:*`);
    },
  };
}

for (const adapter of [memoryAdapter(), redisAdapter()]) {
  describe(`Admission conformance: ${adapter.name}`, { skip: adapter.skip }, () => {
    after(() => adapter.teardown());

    it('reserves up to the capacity, counted in images', async () => {
      const admission = adapter.open(randomUUID(), 10);
      assert.equal(await admission.reserved(), 0);
      assert.equal(await admission.reserve(randomUUID(), 4), 'reserved');
      assert.equal(await admission.reserve(randomUUID(), 6), 'reserved');
      assert.equal(await admission.reserve(randomUUID(), 1), 'full');
      assert.equal(await admission.reserved(), 10);
    });

    it('refuses a task larger than the whole capacity, and rejects invalid counts', async () => {
      const admission = adapter.open(randomUUID(), 4);
      assert.equal(await admission.reserve(randomUUID(), 5), 'full');
      assert.equal(await admission.reserved(), 0);
      await assert.rejects(admission.reserve(randomUUID(), -1), RangeError);
      await assert.rejects(admission.reserve(randomUUID(), 1.5), RangeError);
    });

    it('50 concurrent reserves of one image against capacity 10: exactly 10 succeed', async () => {
      const key = randomUUID();
      const instances = [adapter.open(key, 10), adapter.open(key, 10), adapter.open(key, 10)];
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, index) => (instances[index % instances.length] as Admission).reserve(randomUUID(), 1)),
      );
      assert.equal(answers.filter((answer) => answer === 'reserved').length, 10);
      assert.equal(answers.filter((answer) => answer === 'full').length, 40);
      for (const instance of instances) assert.equal(await instance.reserved(), 10);
    });

    it('release frees the images; releasing an unknown task does nothing', async () => {
      const key = randomUUID();
      const [first, second] = [adapter.open(key, 10), adapter.open(key, 10)];
      const big = randomUUID();
      assert.equal(await first.reserve(big, 8), 'reserved');
      assert.equal(await second.reserve(randomUUID(), 3), 'full');
      await second.release(big);
      assert.equal(await first.reserved(), 0);
      assert.equal(await second.reserve(randomUUID(), 3), 'reserved');
      await first.release(randomUUID());
      await first.release(big);
      assert.equal(await first.reserved(), 3);
    });

    it('a forced reserve counts past the capacity (a backlog from before a restart); plain ones are full until it is released', async () => {
      const key = randomUUID();
      const [first, second] = [adapter.open(key, 4), adapter.open(key, 4)];
      const backlog = randomUUID();
      assert.equal(await first.reserve(backlog, 10, { force: true }), 'reserved');
      assert.equal(await second.reserve(randomUUID(), 3, { force: true }), 'reserved');
      assert.equal(await second.reserved(), 13);
      assert.equal(await first.reserve(randomUUID(), 1), 'full');
      assert.equal(await second.reserve(backlog, 10, { force: true }), 'kept');
      await first.release(backlog);
      assert.equal(await second.reserved(), 3);
      assert.equal(await first.reserve(randomUUID(), 1), 'reserved');
      assert.equal(await first.reserve(randomUUID(), 1), 'full');
    });

    it('reserving the same taskUUID again keeps the first reservation and never counts twice', async () => {
      const key = randomUUID();
      const [first, second] = [adapter.open(key, 10), adapter.open(key, 10)];
      const task = randomUUID();
      assert.equal(await first.reserve(task, 3), 'reserved');
      assert.equal(await second.reserve(task, 3), 'kept');
      assert.equal(await first.reserve(task, 100), 'kept');
      assert.equal(await second.reserved(), 3);
      await second.release(task);
      assert.equal(await first.reserved(), 0);
    });

    it('listOlderThan lists the reservations made before a time', async () => {
      const clock = new ManualClock(1_700_000_000_000);
      const admission = adapter.open(randomUUID(), 10, clock);
      const old = randomUUID();
      const recent = randomUUID();
      const start = clock.now();
      await admission.reserve(old, 1);
      clock.advance(60_000);
      await admission.reserve(recent, 1);
      assert.deepEqual(await admission.listOlderThan(start), []);
      assert.deepEqual(await admission.listOlderThan(start + 30_000), [old]);
      assert.deepEqual((await admission.listOlderThan(start + 120_000)).sort(), [old, recent].sort());
      await admission.release(old);
      assert.deepEqual(await admission.listOlderThan(start + 120_000), [recent]);
    });
  });
}

describe('RedisAdmission when Redis cannot be reached', () => {
  it('every call fails fast with AdmissionUnavailableError', async () => {
    const port = await closedPort();
    const admission = new RedisAdmission({ redisUrl: `redis://127.0.0.1:${port}/0`, capacity: 10 });
    const begun = Date.now();
    const results = await Promise.allSettled([
      admission.reserve(randomUUID(), 1),
      admission.release(randomUUID()),
      admission.reserved(),
      admission.listOlderThan(Date.now()),
    ]);
    const elapsed = Date.now() - begun;
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.reason instanceof AdmissionUnavailableError, String(result.reason));
    }
    assert.ok(elapsed < 8_000, `took ${elapsed} ms`);
    await admission.close();
  });
});

describe('RedisAdmission: a reserve its caller gave up on takes nothing', { skip: privateRedisProblem() }, () => {
  const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** Reads the total until Redis answers (it may still be waking up). */
  async function reservedOnceAnswered(admission: RedisAdmission): Promise<number> {
    for (let i = 0; ; i++) {
      try {
        return await admission.reserved();
      } catch (error) {
        if (i > 50) throw error;
        await settle(100);
      }
    }
  }

  it('Redis frozen (SIGSTOP) while a reserve is sent: refused "unavailable", and nothing is reserved once Redis wakes', async () => {
    const port = await closedPort();
    const redis = await startPrivateRedis(port);
    const admission = new RedisAdmission({ redisUrl: `redis://127.0.0.1:${port}/0`, capacity: 10, timeoutMs: 300 });
    try {
      const warm = randomUUID();
      assert.equal(await admission.reserve(warm, 1), 'reserved');
      await admission.release(warm);
      redis.kill('SIGSTOP');
      const refused = randomUUID();
      await assert.rejects(admission.reserve(refused, 4), AdmissionUnavailableError);
      redis.kill('SIGCONT');
      // The script ran when Redis woke (it was already on the socket); the take-back runs after it.
      await reservedOnceAnswered(admission);
      await settle(200);
      assert.equal(await admission.reserved(), 0);
      assert.deepEqual(await admission.listOlderThan(Date.now() + 60_000), []);
      // Someone else's reservation of the same taskUUID is never taken back.
      assert.equal(await admission.reserve(refused, 2), 'reserved');
      await settle(300);
      assert.equal(await admission.reserved(), 2);
    } finally {
      redis.kill('SIGCONT');
      await admission.close();
      redis.kill('SIGKILL');
    }
  });

  it('Redis gone while a reserve waits for the connection: the reserve is not sent when Redis is back', async () => {
    const port = await closedPort();
    let redis = await startPrivateRedis(port);
    const admission = new RedisAdmission({ redisUrl: `redis://127.0.0.1:${port}/0`, capacity: 10, timeoutMs: 300 });
    try {
      assert.equal(await admission.reserved(), 0);
      const gone = new Promise((resolve) => redis.once('exit', resolve));
      redis.kill('SIGKILL');
      await gone;
      await assert.rejects(admission.reserve(randomUUID(), 3), AdmissionUnavailableError);
      redis = await startPrivateRedis(port);
      assert.equal(await reservedOnceAnswered(admission), 0);
      await settle(300);
      assert.equal(await admission.reserved(), 0);
    } finally {
      await admission.close();
      redis.kill('SIGKILL');
    }
  });
});

/** A loopback port nothing listens on. */
