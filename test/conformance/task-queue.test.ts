/**
 * One list of assertions for the `TaskQueue` port, run against every adapter: the in-process
 * `MemoryQueue` and `BullmqQueue` on Redis. For BullMQ, every `open()` in a test is another
 * instance on the same queue name, as two processes would be; for memory, `open()` hands back
 * the one queue (its jobs live in that instance only).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BullmqQueue } from '../../src/queue/bullmq-queue.ts';
import { MemoryQueue } from '../../src/queue/memory-queue.ts';
import { QueueUnavailableError, type JobHandler, type QueueCounts, type QueueJob, type TaskQueue } from '../../src/queue/task-queue.ts';
import { deferred } from '../../src/shared/deferred.ts';
import { REDIS_DB, redisUrl, serviceProblem, uniquePrefix, closedPort, deleteRedisKeys } from '../helpers/services.ts';

interface ContextOptions {
  readonly maxAttempts?: number;
  readonly onGiveUp?: (job: QueueJob, error: unknown) => void;
}

interface QueueContext {
  /** A queue on this test's backend (its own queue name for BullMQ). */
  open(): TaskQueue;
  /** Closes every queue this context opened. */
  closeAll(): Promise<void>;
}

interface QueueAdapter {
  readonly name: string;
  readonly skip: string | undefined;
  /** Jobs outlive a queue instance: a new instance on the same name runs what a closed one left. */
  readonly durable: boolean;
  /** The wait before a failed attempt runs again, at most (backoff with jitter). */
  readonly retryWithinMs: number;
  context(options?: ContextOptions): QueueContext;
  teardown(): Promise<void>;
}

const redisProblem = await serviceProblem('redis');

const memoryAdapter: QueueAdapter = {
  name: 'MemoryQueue',
  skip: undefined,
  durable: false,
  retryWithinMs: 200,
  context(options = {}) {
    let queue: MemoryQueue | undefined;
    return {
      open: () => (queue ??= new MemoryQueue({ retryDelayMs: 50, ...options })),
      closeAll: async () => queue?.close(),
    };
  },
  teardown: async () => {},
};

function bullmqAdapter(): QueueAdapter {
  const url = redisUrl(REDIS_DB.queue);
  const prefix = uniquePrefix('queue');
  return {
    name: 'BullmqQueue',
    skip: redisProblem,
    durable: true,
    retryWithinMs: 1_000,
    context(options = {}) {
      const name = uniquePrefix('q');
      const opened: BullmqQueue[] = [];
      return {
        open() {
          const queue = new BullmqQueue({ redisUrl: url, name, prefix, retryDelayMs: 100, lockMs: 10_000, ...options });
          opened.push(queue);
          return queue;
        },
        closeAll: async () => {
          await Promise.all(opened.map((queue) => queue.close()));
        },
      };
    },
    async teardown() {
      await deleteRedisKeys(url, `${prefix}:*`);
    },
  };
}

for (const adapter of [memoryAdapter, bullmqAdapter()]) {
  describe(`TaskQueue conformance: ${adapter.name}`, { skip: adapter.skip }, () => {
    const contexts: QueueContext[] = [];
    const context = (options?: ContextOptions): QueueContext => {
      const created = adapter.context(options);
      contexts.push(created);
      return created;
    };
    after(async () => {
      await Promise.all(contexts.map((created) => created.closeAll()));
      await adapter.teardown();
    });

    it('runs every job once, and counts drop to zero', async () => {
      const queue = context().open();
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      const ran: string[] = [];
      const allRan = deferred();
      queue.process(async (job) => {
        ran.push(job.id);
        if (ran.length === ids.length) allRan.resolve();
      }, { concurrency: 2 });
      for (const id of ids) await queue.enqueue({ id });
      await within(allRan.promise, 10_000, 'all jobs to run');
      await untilCounts(queue, { waiting: 0, running: 0 });
      await sleep(100);
      assert.deepEqual([...ran].sort(), [...ids].sort());
    });

    it('a job enqueued after a promise is added only once it resolves, and never when it rejects', async () => {
      const queue = context().open();
      const ran: string[] = [];
      queue.process(async (job) => {
        ran.push(job.id);
      }, { concurrency: 2 });
      const includes = (id: string): boolean => ran.includes(id);
      const gate = deferred<void>();
      const later = randomUUID();
      const enqueued = queue.enqueue({ id: later }, gate.promise);
      await sleep(200);
      assert.deepEqual(await queue.counts(), { waiting: 0, running: 0 }, 'nothing is added before the promise resolves');
      assert.deepEqual(ran, []);
      gate.resolve();
      await within(enqueued, 10_000, 'the enqueue to finish');
      await until(() => includes(later), 'the job to run');

      const refused = randomUUID();
      const reason = new Error('the insert failed');
      await assert.rejects(queue.enqueue({ id: refused }, Promise.reject(reason)), (error) => error === reason);
      await sleep(200);
      assert.deepEqual(await queue.counts(), { waiting: 0, running: 0 });
      assert.ok(!includes(refused), 'a job whose promise rejected never runs');
      // The id is free: enqueued again, it runs.
      await queue.enqueue({ id: refused });
      await until(() => includes(refused), 'the job to run once enqueued for real');
    });

    it('enqueue is idempotent while a job waits or runs; a finished job can be enqueued again', async () => {
      const queue = context().open();
      const id = randomUUID();
      await queue.enqueue({ id });
      await queue.enqueue({ id });
      assert.deepEqual(await queue.counts(), { waiting: 1, running: 0 });

      let runs = 0;
      let finished = 0;
      const started = deferred();
      const release = deferred();
      queue.process(async () => {
        runs += 1;
        if (runs === 1) {
          started.resolve();
          await release.promise;
        }
        finished += 1;
      }, { concurrency: 2 });
      await within(started.promise, 10_000, 'the job to start');
      await queue.enqueue({ id });
      await untilCounts(queue, { waiting: 0, running: 1 });
      release.resolve();
      await untilCounts(queue, { waiting: 0, running: 0 });
      await until(() => finished === 1, 'the first run to finish');
      assert.equal(runs, 1);

      await queue.enqueue({ id });
      await until(() => finished === 2, 'the second run after a fresh enqueue');
      assert.equal(runs, 2);
    });

    it('never runs more than `concurrency` jobs at once', async () => {
      const queue = context().open();
      let inFlight = 0;
      let maxInFlight = 0;
      let done = 0;
      const gate = deferred();
      queue.process(async () => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await gate.promise;
        inFlight -= 1;
        done += 1;
      }, { concurrency: 3 });
      for (let i = 0; i < 8; i += 1) await queue.enqueue({ id: randomUUID() });
      await until(() => inFlight === 3, 'three jobs in flight');
      await sleep(300);
      assert.equal(inFlight, 3);
      assert.deepEqual(await queue.counts(), { waiting: 5, running: 3 });
      gate.resolve();
      await until(() => done === 8, 'all eight jobs');
      assert.equal(maxInFlight, 3);
    });

    it('runs jobs in enqueue order with concurrency 1', async () => {
      const queue = context().open();
      const ids = Array.from({ length: 6 }, () => randomUUID());
      for (const id of ids) await queue.enqueue({ id });
      const ran: string[] = [];
      queue.process(async (job) => {
        ran.push(job.id);
      }, { concurrency: 1 });
      await until(() => ran.length === ids.length, 'all jobs');
      assert.deepEqual(ran, ids);
    });

    it('serves groups fairly (weighted, by cost) and each group in FIFO order (docs/tenancy.md)', async () => {
      const queue = context().open();
      const a: string[] = Array.from({ length: 12 }, () => randomUUID());
      const b: string[] = Array.from({ length: 3 }, () => randomUUID());
      const heavy: string[] = Array.from({ length: 6 }, () => randomUUID());
      // A queues twelve one-image jobs, then B three, then a weight-2 group six: fair order
      // interleaves them instead of running A's twelve first.
      for (const id of a) await queue.enqueue({ id, group: 'a', cost: 1 });
      for (const id of b) await queue.enqueue({ id, group: 'b', cost: 1 });
      for (const id of heavy) await queue.enqueue({ id, group: 'heavy', cost: 1, weight: 2 });
      const ran: string[] = [];
      queue.process(async (job) => {
        ran.push(job.id);
      }, { concurrency: 1 });
      await until(() => ran.length === a.length + b.length + heavy.length, 'all jobs');
      const position = (id: string): number => ran.indexOf(id);
      assert.deepEqual(ran.filter((id) => a.includes(id)), a, 'FIFO within a group');
      assert.deepEqual(ran.filter((id) => b.includes(id)), b);
      assert.deepEqual(ran.filter((id) => heavy.includes(id)), heavy);
      assert.ok(position(b[0]!) <= 1, `B's first job ran at ${position(b[0]!)}`);
      assert.ok(position(b[2]!) <= 9, `B's last job ran at ${position(b[2]!)}, not after A's twelve`);
      // Weight 2: the heavy group's six jobs are done within its first three turns of the others.
      assert.ok(position(heavy[5]!) < 12, `the weighted group finished at ${position(heavy[5]!)}`);
    });

    it('enqueueing a job that is already waiting changes neither the queue nor its group’s fair share', async () => {
      const queue = context().open();
      const [a1, a2, c1, c2] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      // A's first job stands for 50 images, C's for 100. The sweeper re-enqueues waiting jobs
      // (here five times): that must not push A's next job behind C's second.
      await queue.enqueue({ id: a1, group: 'a', cost: 50 });
      for (let i = 0; i < 5; i++) await queue.enqueue({ id: a1, group: 'a', cost: 50 });
      await queue.enqueue({ id: c1, group: 'c', cost: 100 });
      await queue.enqueue({ id: c2, group: 'c', cost: 1 });
      await queue.enqueue({ id: a2, group: 'a', cost: 1 });
      const ran: string[] = [];
      queue.process(async (job) => {
        ran.push(job.id);
      }, { concurrency: 1 });
      await until(() => ran.length === 4, 'all jobs');
      assert.deepEqual(ran, [a1, c1, a2, c2], 'A resumes at 50 images of virtual time, C at 100');
    });

    it('a job of several units hands its slot back between units when another group is due first, and resumes in FIFO order (JobTurn)', async () => {
      const queue = context().open();
      const [a1, a2, b1]: string[] = [randomUUID(), randomUUID(), randomUUID()];
      const name = new Map<string, string>([[a1!, 'a1'], [a2!, 'a2'], [b1!, 'b1']]);
      const units = new Map<string, number>([[a1!, 6], [a2!, 2], [b1!, 1]]);
      // Units done so far, across runs (the task store's part in Kiln).
      const done = new Map<string, number>();
      const log: string[] = [];
      const yields: string[] = [];
      const bQueued = deferred();
      queue.process(async (job, _signal, turn) => {
        let run = 0;
        while ((done.get(job.id) ?? 0) < units.get(job.id)!) {
          if (run > 0 && (await turn.shouldYield(run))) {
            yields.push(`${name.get(job.id)} after ${run}`);
            return { yielded: run };
          }
          const unit = done.get(job.id) ?? 0;
          log.push(`${name.get(job.id)}#${unit}`);
          // A's first unit lasts until B has queued its one-unit job.
          if (job.id === a1 && unit === 0) await bQueued.promise;
          done.set(job.id, unit + 1);
          run += 1;
        }
        return undefined;
      }, { concurrency: 1 });
      await queue.enqueue({ id: a1!, group: 'a', cost: 6 });
      await queue.enqueue({ id: a2!, group: 'a', cost: 2 });
      await until(() => log.length === 1, "A's first unit");
      await queue.enqueue({ id: b1!, group: 'b', cost: 1 });
      bQueued.resolve();
      await until(() => log.length === 9, 'every unit');
      await untilCounts(queue, { waiting: 0, running: 0 });
      assert.equal(log.indexOf('b1#0'), 1, `B's unit ran right after the unit running when it came: ${log.join(' ')}`);
      assert.deepEqual(
        log.filter((entry) => !entry.startsWith('b')),
        ['a1#0', 'a1#1', 'a1#2', 'a1#3', 'a1#4', 'a1#5', 'a2#0', 'a2#1'],
        "A's units stay in order, each done once",
      );
      // One hand-back, for B; never to a job of its own group.
      assert.deepEqual(yields, ['a1 after 1']);
    });

    it('shouldYield is false while nothing else waits, or only the group’s own later jobs', async () => {
      const queue = context().open();
      const [a1, a2] = [randomUUID(), randomUUID()];
      const answers: boolean[] = [];
      const release = deferred();
      queue.process(async (job, _signal, turn) => {
        if (job.id !== a1) return;
        answers.push(await turn.shouldYield(1));
        await release.promise;
        answers.push(await turn.shouldYield(3));
      }, { concurrency: 1 });
      await queue.enqueue({ id: a1, group: 'a', cost: 4 });
      await until(() => answers.length === 1, 'the first answer');
      await queue.enqueue({ id: a2, group: 'a', cost: 1 });
      release.resolve();
      await until(() => answers.length === 2, 'the second answer');
      assert.deepEqual(answers, [false, false]);
      await untilCounts(queue, { waiting: 0, running: 0 });
    });

    it('cancel removes a waiting job, which then never runs', async () => {
      const queue = context().open();
      const [first, second, third] = [randomUUID(), randomUUID(), randomUUID()];
      const ran: string[] = [];
      const started = deferred();
      const release = deferred();
      queue.process(async (job) => {
        ran.push(job.id);
        if (job.id === first) {
          started.resolve();
          await release.promise;
        }
      }, { concurrency: 1 });
      await queue.enqueue({ id: first });
      await queue.enqueue({ id: second });
      await queue.enqueue({ id: third });
      await within(started.promise, 10_000, 'the first job to start');
      assert.equal(await queue.cancel(second), true);
      assert.equal(await queue.cancel(randomUUID()), false);
      release.resolve();
      await until(() => ran.length === 2, 'the remaining job');
      await untilCounts(queue, { waiting: 0, running: 0 });
      await sleep(200);
      assert.deepEqual(ran, [first, third]);
      assert.equal(await queue.cancel(second), false);
    });

    it('cancel aborts a running job, which is not run again', async () => {
      const queue = context().open();
      const id = randomUUID();
      let runs = 0;
      let seen: AbortSignal | undefined;
      const started = deferred();
      queue.process(async (_job, signal) => {
        runs += 1;
        seen = signal;
        started.resolve();
        await abortion(signal);
      }, { concurrency: 1 });
      await queue.enqueue({ id });
      await within(started.promise, 10_000, 'the job to start');
      assert.equal(await queue.cancel(id), true);
      assert.equal(seen?.aborted, true);
      await untilCounts(queue, { waiting: 0, running: 0 });
      await sleep(adapter.retryWithinMs + 300);
      assert.equal(runs, 1);
    });

    it('a rejected run is a failed attempt: the job runs again', async () => {
      const queue = context().open();
      const id = randomUUID();
      let attempts = 0;
      const succeeded = deferred();
      queue.process(async () => {
        attempts += 1;
        if (attempts === 1) throw new Error('first attempt fails');
        succeeded.resolve();
      }, { concurrency: 1 });
      await queue.enqueue({ id });
      await within(succeeded.promise, 10_000, 'the second attempt');
      assert.equal(attempts, 2);
      await untilCounts(queue, { waiting: 0, running: 0 });
    });

    it('a job that keeps failing is given up after maxAttempts', async () => {
      const gaveUp = deferred<{ job: QueueJob; error: unknown }>();
      const queue = context({ maxAttempts: 3, onGiveUp: (job, error) => gaveUp.resolve({ job, error }) }).open();
      const id = randomUUID();
      let attempts = 0;
      queue.process(async () => {
        attempts += 1;
        throw new Error(`attempt ${attempts} fails`);
      }, { concurrency: 1 });
      await queue.enqueue({ id });
      const given = await within(gaveUp.promise, 15_000, 'the job to be given up');
      assert.equal(given.job.id, id);
      assert.match(String((given.error as Error).message), /attempt 3 fails/);
      await untilCounts(queue, { waiting: 0, running: 0 });
      await sleep(adapter.retryWithinMs);
      assert.equal(attempts, 3);
    });

    it('close lets a quick job finish and aborts a long one, which is not completed', async () => {
      const created = context();
      const queue = created.open();
      const quick = randomUUID();
      const long = randomUUID();
      const completed: string[] = [];
      const started = new Set<string>();
      const bothStarted = deferred();
      let longSignal: AbortSignal | undefined;
      queue.process(async (job, signal) => {
        started.add(job.id);
        if (started.size === 2) bothStarted.resolve();
        if (job.id === quick) {
          await sleep(200);
        } else {
          longSignal = signal;
          await abortion(signal);
        }
        completed.push(job.id);
      }, { concurrency: 2 });
      await queue.enqueue({ id: quick });
      await queue.enqueue({ id: long });
      await within(bothStarted.promise, 10_000, 'both jobs to start');
      const closing = Date.now();
      await queue.close({ drainMs: 700 });
      assert.ok(Date.now() - closing >= 600, 'close waited for the drain period');
      assert.deepEqual(completed, [quick]);
      assert.equal(longSignal?.aborted, true);
      await assert.rejects(queue.enqueue({ id: randomUUID() }), QueueUnavailableError);
      await assert.rejects(queue.counts(), QueueUnavailableError);

      if (adapter.durable) {
        const next = created.open();
        const rerun = deferred<string>();
        next.process(async (job) => rerun.resolve(job.id), { concurrency: 1 });
        assert.equal(await within(rerun.promise, 10_000, 'the aborted job to run again'), long);
        await untilCounts(next, { waiting: 0, running: 0 });
      }
    });

    it('counts waiting and running jobs across instances', async () => {
      const created = context();
      const producer = created.open();
      const worker = created.open();
      const gate = deferred();
      let started = 0;
      let done = 0;
      worker.process(async () => {
        started += 1;
        await gate.promise;
        done += 1;
      }, { concurrency: 1 });
      for (let i = 0; i < 3; i += 1) await producer.enqueue({ id: randomUUID() });
      await until(() => started === 1, 'one job to start');
      await untilCounts(producer, { waiting: 2, running: 1 });
      assert.deepEqual(await worker.counts(), { waiting: 2, running: 1 });
      gate.resolve();
      await until(() => done === 3, 'all jobs');
      await untilCounts(producer, { waiting: 0, running: 0 });
      assert.deepEqual(await worker.counts(), { waiting: 0, running: 0 });
    });
  });
}

describe('BullmqQueue when Redis cannot be reached', () => {
  it('enqueue, counts and cancel fail fast with QueueUnavailableError; close does not hang', async () => {
    const port = await closedPort();
    const queue = new BullmqQueue({ redisUrl: `redis://127.0.0.1:${port}/0`, name: 'kiln-unreachable' });
    const handler: JobHandler = async () => {};
    queue.process(handler, { concurrency: 1 });
    const begun = Date.now();
    const results = await Promise.allSettled([queue.enqueue({ id: randomUUID() }), queue.counts(), queue.cancel(randomUUID())]);
    const elapsed = Date.now() - begun;
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.reason instanceof QueueUnavailableError, String(result.reason));
    }
    assert.ok(elapsed < 8_000, `took ${elapsed} ms`);
    await within(queue.close({ drainMs: 100 }), 15_000, 'close');
  });
});

/** Resolves when the signal aborts, by rejecting with its reason (as a handler must). */
function abortion(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function untilCounts(queue: TaskQueue, expected: QueueCounts): Promise<void> {
  let last: QueueCounts | undefined;
  try {
    await until(async () => {
      last = await queue.counts();
      return last.waiting === expected.waiting && last.running === expected.running;
    }, 'counts');
  } catch {
    assert.deepEqual(last, expected);
  }
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A loopback port nothing listens on. */
