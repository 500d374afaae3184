/**
 * Conformance suite of the `TaskEventBus` port: the same assertions run against every adapter.
 * For Redis the watcher and the emitter are two instances, as two processes would be.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { ApiError } from '../../src/errors/index.ts';
import { invalidValue, uploadFailed } from '../../src/errors/factories.ts';
import { RedisTaskEvents } from '../../src/events/redis-task-events.ts';
import { EventBusUnavailableError, MemoryTaskEvents, type TaskEvent, type TaskEventBus } from '../../src/events/task-events.ts';
import type { Logger } from '../../src/shared/logger.ts';
import { deferred } from '../../src/shared/deferred.ts';
import { closedPort, REDIS_DB, redisUrl, serviceProblem, uniquePrefix } from '../helpers/services.ts';

interface Pair {
  /** Where clients wait (an API process). */
  readonly watcher: TaskEventBus;
  /** Where tasks run (a worker process). */
  readonly emitter: TaskEventBus;
  close(): Promise<void>;
}

interface Adapter {
  readonly name: string;
  readonly skip: string | undefined;
  open(): Pair;
}

const redisSkip = await serviceProblem('redis');
const REDIS_URL = redisUrl(REDIS_DB.events);
const PREFIX = uniquePrefix('events');

const ADAPTERS: readonly Adapter[] = [
  {
    name: 'MemoryTaskEvents',
    skip: undefined,
    open() {
      const bus = new MemoryTaskEvents();
      return { watcher: bus, emitter: bus, close: () => bus.close() };
    },
  },
  {
    name: 'RedisTaskEvents',
    skip: redisSkip,
    open() {
      const watcher = new RedisTaskEvents({ redisUrl: REDIS_URL, prefix: PREFIX });
      const emitter = new RedisTaskEvents({ redisUrl: REDIS_URL, prefix: PREFIX });
      return { watcher, emitter, close: async () => void (await Promise.all([watcher.close(), emitter.close()])) };
    },
  },
];

/** Records what a listener hears; `until(n)` resolves once `n` events arrived (or fails after `ms`). */
function recorder(ms = 5_000) {
  const events: TaskEvent[] = [];
  const waiters: { count: number; done: () => void }[] = [];
  const listener = (event: TaskEvent): void => {
    events.push(event);
    for (const waiter of waiters.filter((w) => events.length >= w.count)) waiter.done();
  };
  const until = async (count: number): Promise<TaskEvent[]> => {
    if (events.length < count) {
      const arrived = deferred();
      waiters.push({ count, done: () => arrived.resolve() });
      const timer = setTimeout(() => arrived.reject(new Error(`only ${events.length} of ${count} events arrived within ${ms} ms`)), ms);
      try {
        await arrived.promise;
      } finally {
        clearTimeout(timer);
      }
    }
    return events;
  };
  return { events, listener, until };
}

const result = (taskUUID: string, index: number): TaskEvent => ({ type: 'result', taskUUID, item: { taskType: 'imageInference', taskUUID, index } });
const end = (taskUUID: string): TaskEvent => ({ type: 'end', taskUUID });

for (const adapter of ADAPTERS) {
  describe(`TaskEventBus conformance: ${adapter.name}`, { skip: adapter.skip }, () => {
    let pair: Pair;
    before(() => {
      pair = adapter.open();
    });
    after(async () => {
      await pair.close();
    });

    /**
     * Whether an event that must not arrive has arrived: a sentinel task is watched and emitted to
     * last; events of one publisher keep their order, so by the time the sentinel is heard, any
     * earlier event would have been too.
     */
    async function flush(): Promise<void> {
      const sentinel = randomUUID();
      const heard = recorder();
      const stop = await pair.watcher.watch(sentinel, heard.listener);
      await pair.emitter.emit(end(sentinel));
      await heard.until(1);
      stop();
    }

    test('every event emitted after watch resolved arrives, in order, once (100 results in a row)', async () => {
      const taskUUID = randomUUID();
      const heard = recorder();
      const stop = await pair.watcher.watch(taskUUID, heard.listener);
      // Not awaited one by one: the order must hold for emits issued back to back.
      await Promise.all([...Array.from({ length: 100 }, (_, i) => pair.emitter.emit(result(taskUUID, i))), pair.emitter.emit(end(taskUUID))]);
      const events = await heard.until(101);
      await flush();
      assert.equal(events.length, 101);
      assert.deepEqual(
        events.slice(0, 100).map((e) => (e.type === 'result' ? e.item.index : e.type)),
        Array.from({ length: 100 }, (_, i) => i),
      );
      assert.deepEqual(events[100], end(taskUUID));
      assert.deepEqual(events[0], result(taskUUID, 0));
      stop();
    });

    test('two listeners of one task each hear every event; unsubscribing one keeps the other', async () => {
      const taskUUID = randomUUID();
      const first = recorder();
      const second = recorder();
      const stopFirst = await pair.watcher.watch(taskUUID, first.listener);
      const stopSecond = await pair.watcher.watch(taskUUID, second.listener);
      await pair.emitter.emit(result(taskUUID, 0));
      await pair.emitter.emit(result(taskUUID, 1));
      assert.equal((await first.until(2)).length, 2);
      assert.equal((await second.until(2)).length, 2);

      stopFirst();
      stopFirst(); // a second call is harmless and must not drop the other listener
      await pair.emitter.emit(end(taskUUID));
      await second.until(3);
      await flush();
      assert.deepEqual(second.events.at(-1), end(taskUUID));
      assert.equal(first.events.length, 2);
      stopSecond();
    });

    test('taskUUIDs are compared case-insensitively', async () => {
      const taskUUID = randomUUID();
      const upper = recorder();
      const lower = recorder();
      const stopUpper = await pair.watcher.watch(taskUUID.toUpperCase(), upper.listener);
      const stopLower = await pair.watcher.watch(taskUUID.toLowerCase(), lower.listener);
      await pair.emitter.emit(result(taskUUID.toLowerCase(), 0));
      await pair.emitter.emit(end(taskUUID.toUpperCase()));
      assert.deepEqual(
        (await upper.until(2)).map((e) => e.type),
        ['result', 'end'],
      );
      assert.deepEqual(
        (await lower.until(2)).map((e) => e.type),
        ['result', 'end'],
      );
      stopUpper();
      stopLower();
    });

    test('errors and notices keep code, message, parameter, taskUUID, status and retryability', async () => {
      const taskUUID = randomUUID();
      const heard = recorder();
      const stop = await pair.watcher.watch(taskUUID, heard.listener);
      const error = invalidValue('width', 'Must be a multiple of 64.', { taskUUID, taskType: 'imageInference', min: 128, max: 2048 });
      const notice = uploadFailed(taskUUID, randomUUID(), 'the endpoint answered 500');
      const unavailable = new ApiError('providerError', 'The provider failed.', { taskUUID, retryable: false });
      await pair.emitter.emit({ type: 'error', taskUUID, error });
      await pair.emitter.emit({ type: 'notice', taskUUID, error: notice });
      await pair.emitter.emit({ type: 'error', taskUUID, error: unavailable });
      const events = await heard.until(3);
      const sent = [error, notice, unavailable];
      assert.deepEqual(
        events.map((e) => e.type),
        ['error', 'notice', 'error'],
      );
      events.forEach((event, i) => {
        assert.ok(event.type === 'error' || event.type === 'notice');
        const original = sent[i] as ApiError;
        assert.ok(event.error instanceof ApiError);
        assert.equal(event.taskUUID, taskUUID);
        assert.equal(event.error.code, original.code);
        assert.equal(event.error.message, original.message);
        assert.equal(event.error.status, original.status);
        assert.equal(event.error.retryable, original.retryable);
        assert.deepEqual(event.error.details.parameter, original.details.parameter);
        assert.equal(event.error.details.taskUUID, taskUUID);
        assert.deepEqual(event.error.toJSON(), original.toJSON());
      });
      assert.equal((events[2] as { error: ApiError }).error.retryable, false, 'an explicit retryable survives');
      stop();
    });

    test('a 5 MB base64 item arrives intact', async () => {
      const taskUUID = randomUUID();
      const heard = recorder(10_000);
      const stop = await pair.watcher.watch(taskUUID, heard.listener);
      const imageBase64Data = randomBytes(3_750_000).toString('base64');
      assert.equal(imageBase64Data.length, 5_000_000);
      await pair.emitter.emit({ type: 'result', taskUUID, item: { taskUUID, imageBase64Data } });
      const [event] = await heard.until(1);
      assert.ok(event?.type === 'result');
      assert.equal(event.item.imageBase64Data, imageBase64Data);
      stop();
    });

    test('a listener hears nothing of tasks it does not watch', async () => {
      const watched = randomUUID();
      const heard = recorder();
      const stop = await pair.watcher.watch(watched, heard.listener);
      await pair.emitter.emit(result(randomUUID(), 0));
      await pair.emitter.emit(end(watched));
      await heard.until(1);
      await flush();
      assert.deepEqual(heard.events, [end(watched)]);
      stop();
    });

    test('unsubscribing stops delivery', async () => {
      const taskUUID = randomUUID();
      const heard = recorder();
      const stop = await pair.watcher.watch(taskUUID, heard.listener);
      await pair.emitter.emit(result(taskUUID, 0));
      await heard.until(1);
      stop();
      await pair.emitter.emit(result(taskUUID, 1));
      await pair.emitter.emit(end(taskUUID));
      await flush();
      assert.equal(heard.events.length, 1);
    });
  });
}

/** A logger that keeps the lines it is given. */
function memoryLogger(): Logger & { lines: { level: string; obj: object | string; msg: string | undefined }[] } {
  const lines: { level: string; obj: object | string; msg: string | undefined }[] = [];
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const logger = {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: () => logger,
  };
  return logger;
}

describe('RedisTaskEvents: Redis specifics', { skip: redisSkip }, () => {
  let admin: Redis;
  const prefix = uniquePrefix('events-redis');
  before(() => {
    admin = new Redis(REDIS_URL);
  });
  after(async () => {
    await admin.quit();
  });

  /** Subscribers of a channel across the server, as Redis counts them. */
  async function subscribers(channel: string): Promise<number> {
    const reply = (await admin.pubsub('NUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  }

  /** Polls `check` until it holds (Redis applies an UNSUBSCRIBE after the call returns). */
  async function eventually(check: () => Promise<boolean>, ms = 3_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`condition not met within ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  test('watchers of one task share one SUBSCRIBE; the last to leave unsubscribes', async () => {
    const bus = new RedisTaskEvents({ redisUrl: REDIS_URL, prefix });
    try {
      const taskUUID = randomUUID();
      const channel = `${prefix}:task:${taskUUID}`;
      const stops = await Promise.all([1, 2, 3].map(() => bus.watch(taskUUID.toUpperCase(), () => {})));
      assert.equal(await subscribers(channel), 1);
      stops[0]?.();
      stops[1]?.();
      // still held by the third watcher: a fresh watch followed by a check sees the subscription intact
      const again = await bus.watch(taskUUID, () => {});
      assert.equal(await subscribers(channel), 1);
      stops[2]?.();
      again();
      await eventually(async () => (await subscribers(channel)) === 0);
    } finally {
      await bus.close();
    }
  });

  test('the subscriber re-subscribes its channels after its connection is dropped', async () => {
    const connectionPrefix = uniquePrefix('events-resub');
    const watcher = new RedisTaskEvents({ redisUrl: REDIS_URL, prefix: connectionPrefix });
    const emitter = new RedisTaskEvents({ redisUrl: REDIS_URL, prefix: connectionPrefix });
    try {
      const taskUUID = randomUUID();
      const heard = recorder();
      const stop = await watcher.watch(taskUUID, heard.listener);
      // What a Redis restart does to a subscriber: its connection and all its subscriptions are gone.
      const list = (await admin.client('LIST')) as string;
      const ids = list
        .split('\n')
        .filter((line) => line.includes(` name=${connectionPrefix}-events-sub `))
        .map((line) => /\bid=(\d+)/.exec(line)?.[1]);
      assert.equal(ids.length, 1, 'the subscriber connection is named after the prefix');
      await admin.client('KILL', 'ID', ids[0] as string);
      // Events published while the subscription is down are lost by design (the store has them);
      // keep publishing until one is heard again.
      // Its watchers are told so (a resync: read the store), once the connection is back.
      let index = 0;
      await eventually(async () => {
        await emitter.emit(result(taskUUID, index++));
        return heard.events.some((event) => event.type === 'result');
      }, 8_000);
      assert.deepEqual(
        heard.events.filter((event) => event.type === 'resync'),
        [{ type: 'resync', taskUUID }],
      );
      // A resync is local: emitting one publishes nothing.
      await emitter.emit({ type: 'resync', taskUUID });
      await emitter.emit(end(taskUUID));
      await heard.until(heard.events.findIndex((event) => event.type === 'end') >= 0 ? 0 : heard.events.length + 1);
      assert.equal(heard.events.filter((event) => event.type === 'resync').length, 1);
      stop();
    } finally {
      await Promise.all([watcher.close(), emitter.close()]);
    }
  });

  test('a listener that throws is logged and does not keep the event from the others', async () => {
    const logger = memoryLogger();
    const watcher = new RedisTaskEvents({ redisUrl: REDIS_URL, prefix, logger });
    const emitter = new RedisTaskEvents({ redisUrl: REDIS_URL, prefix });
    try {
      const taskUUID = randomUUID();
      const heard = recorder();
      const stopThrower = await watcher.watch(taskUUID, () => {
        throw new Error('listener bug');
      });
      const stop = await watcher.watch(taskUUID, heard.listener);
      await emitter.emit(end(taskUUID));
      await heard.until(1);
      assert.ok(logger.lines.some((line) => line.level === 'error' && line.msg === 'task event listener threw'));
      stopThrower();
      stop();
    } finally {
      await Promise.all([watcher.close(), emitter.close()]);
    }
  });

  test('watch rejects with EventBusUnavailableError within a few seconds when Redis is down', async () => {
    const logger = memoryLogger();
    const bus = new RedisTaskEvents({ redisUrl: `redis://127.0.0.1:${await closedPort()}/0`, prefix, logger });
    try {
      const started = Date.now();
      await assert.rejects(bus.watch(randomUUID(), () => {}), EventBusUnavailableError);
      assert.ok(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
      // The failed channel is forgotten: a second try asks Redis again (and fails the same way).
      await assert.rejects(bus.watch(randomUUID(), () => {}), EventBusUnavailableError);
    } finally {
      await bus.close();
    }
  });

  test('emit resolves without throwing within a few seconds when Redis is down, and logs the loss', async () => {
    const logger = memoryLogger();
    const bus = new RedisTaskEvents({ redisUrl: `redis://127.0.0.1:${await closedPort()}/0`, prefix, logger });
    try {
      const taskUUID = randomUUID();
      const started = Date.now();
      await bus.emit(result(taskUUID, 0));
      await bus.emit({ type: 'error', taskUUID, error: new ApiError('providerError', 'boom', { taskUUID }) });
      assert.ok(Date.now() - started < 6_000, `took ${Date.now() - started} ms`);
      assert.ok(logger.lines.some((line) => line.level === 'warn' && typeof line.obj === 'object' && (line.obj as { taskUUID?: string }).taskUUID === taskUUID));
    } finally {
      await bus.close();
    }
  });
});
