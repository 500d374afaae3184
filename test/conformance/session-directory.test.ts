/**
 * Conformance suite of the `SessionDirectory` port. The Redis directory is the one that shares
 * sessions, so it carries the assertions (two instances as two API processes); the local one
 * only has to know nothing.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisSessionDirectory } from '../../src/events/redis-session-directory.ts';
import { LocalSessionDirectory, type SessionDirectory } from '../../src/events/session-directory.ts';
import { EventBusUnavailableError } from '../../src/events/task-events.ts';
import { WsSessions } from '../../src/api/ws-sessions.ts';
import pino from 'pino';
import type { WebSocket } from 'ws';
import { REDIS_DB, redisUrl, serviceProblem, uniquePrefix } from '../helpers/services.ts';

const redisSkip = await serviceProblem('redis');
const REDIS_URL = redisUrl(REDIS_DB.misc);
const PREFIX = uniquePrefix('sessions');
const TTL_MS = 60_000;

describe('LocalSessionDirectory', () => {
  test('is not shared and finds nothing, whatever was recorded', async () => {
    const directory: SessionDirectory = new LocalSessionDirectory();
    const sessionId = randomUUID();
    await directory.open(sessionId, 'key-1', randomUUID(), TTL_MS);
    assert.equal(directory.shared, false);
    assert.equal(await directory.find(sessionId), undefined);
    await directory.close();
  });
});

describe('RedisSessionDirectory', { skip: redisSkip }, () => {
  /** Two API processes. */
  let first: RedisSessionDirectory;
  let second: RedisSessionDirectory;
  let admin: Redis;

  before(() => {
    first = new RedisSessionDirectory({ redisUrl: REDIS_URL, prefix: PREFIX });
    second = new RedisSessionDirectory({ redisUrl: REDIS_URL, prefix: PREFIX });
    admin = new Redis(REDIS_URL);
  });
  after(async () => {
    const keys = await admin.keys(`${PREFIX}:*`);
    if (keys.length > 0) await admin.del(...keys);
    await Promise.all([first.close(), second.close(), admin.quit()]);
  });

  /** Polls until `check` holds; TTLs run on Redis's clock, so the test cannot be told when. */
  async function eventually(check: () => Promise<boolean>, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`condition not met within ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  test('is shared', () => {
    assert.equal(first.shared, true);
  });

  test('what one process records, another finds: key, open tasks, items sent', async () => {
    const sessionId = randomUUID();
    const taskA = randomUUID().toUpperCase();
    const taskB = randomUUID();
    await first.open(sessionId, 'key-1', taskA, TTL_MS);
    await first.open(sessionId, 'key-1', taskB, TTL_MS);
    await first.sent(sessionId, taskA, 'image-1', TTL_MS);
    await first.sent(sessionId, taskA.toLowerCase(), 'image-2', TTL_MS);
    await first.sent(sessionId, taskA, 'image-2', TTL_MS); // twice is once
    await first.sent(sessionId, taskA, 'error:["x",1]:weird', TTL_MS);

    const found = await second.find(sessionId);
    assert.ok(found);
    assert.equal(found.apiKeyId, 'key-1');
    assert.deepEqual(
      new Map([...found.tasks].map(([task, items]) => [task, [...items].sort()])),
      new Map([
        [taskA.toLowerCase(), ['error:["x",1]:weird', 'image-1', 'image-2']],
        [taskB, []],
      ]),
    );
  });

  test('an unknown session is undefined', async () => {
    assert.equal(await second.find(randomUUID()), undefined);
  });

  test('finish removes one task and its items, and leaves the others', async () => {
    const sessionId = randomUUID();
    const done = randomUUID();
    const open = randomUUID();
    await first.open(sessionId, 'key-1', done, TTL_MS);
    await first.open(sessionId, 'key-1', open, TTL_MS);
    await first.sent(sessionId, done, 'image-1', TTL_MS);
    await first.sent(sessionId, open, 'image-2', TTL_MS);
    await second.finish(sessionId, done.toUpperCase(), 'process-2');

    const found = await first.find(sessionId);
    assert.ok(found);
    assert.deepEqual([...found.tasks.keys()], [open]);
    assert.deepEqual([...(found.tasks.get(open) ?? [])], ['image-2']);
    // an item arriving after finish does not bring the task back
    await first.sent(sessionId, done, 'image-3', TTL_MS);
    assert.deepEqual([...((await first.find(sessionId))?.tasks.keys() ?? [])], [open]);
  });

  test('the record expires ttlMs after the last write; touch keeps it', async () => {
    const sessionId = randomUUID();
    const taskUUID = randomUUID();
    await first.open(sessionId, 'key-1', taskUUID, 300);
    await first.sent(sessionId, taskUUID, 'image-1', 300);
    assert.ok(await second.find(sessionId));
    // every key of the session carries the same TTL
    const ttl = await admin.pttl(`${PREFIX}:ws:${sessionId}`);
    assert.ok(ttl > 0 && ttl <= 300, `pttl ${ttl}`);

    await first.touch(sessionId, TTL_MS);
    assert.ok((await admin.pttl(`${PREFIX}:ws:${sessionId}`)) > 300);
    await first.touch(sessionId, 300);

    const started = Date.now();
    await eventually(async () => (await second.find(sessionId)) === undefined, 3_000);
    assert.ok(Date.now() - started >= 150, 'expired no sooner than its TTL');
    assert.equal(await admin.exists(`${PREFIX}:ws:${sessionId}`), 0, 'no key left behind');
  });

  test('a session sees only its own tasks and items', async () => {
    const one = randomUUID();
    const other = randomUUID();
    const taskOne = randomUUID();
    const taskOther = randomUUID();
    await first.open(one, 'key-1', taskOne, TTL_MS);
    await first.sent(one, taskOne, 'image-1', TTL_MS);
    await second.open(other, 'key-2', taskOther, TTL_MS);
    await second.sent(other, taskOther, 'image-2', TTL_MS);
    // the same task in both sessions stays apart too
    await second.open(other, 'key-2', taskOne, TTL_MS);

    const foundOne = await second.find(one);
    const foundOther = await first.find(other);
    assert.equal(foundOne?.apiKeyId, 'key-1');
    assert.equal(foundOther?.apiKeyId, 'key-2');
    assert.deepEqual([...(foundOne?.tasks.keys() ?? [])], [taskOne]);
    assert.deepEqual([...(foundOne?.tasks.get(taskOne) ?? [])], ['image-1']);
    assert.deepEqual([...(foundOther?.tasks.keys() ?? [])].sort(), [taskOther, taskOne].sort());
    assert.deepEqual([...(foundOther?.tasks.get(taskOne) ?? [])], []);
  });

  test('items recorded for a session that expired do not revive it', async () => {
    const sessionId = randomUUID();
    await first.sent(sessionId, randomUUID(), 'image-1', TTL_MS);
    assert.equal(await second.find(sessionId), undefined);
  });

  test('claim records which process holds a session; finish by another process changes nothing', async () => {
    const sessionId = randomUUID();
    const taskUUID = randomUUID();
    await first.claim(sessionId, 'key-1', 'process-1', TTL_MS);
    await first.open(sessionId, 'key-1', taskUUID, TTL_MS);
    assert.equal((await second.find(sessionId))?.owner, 'process-1');
    await second.claim(sessionId, 'key-1', 'process-2', TTL_MS);
    assert.equal((await first.find(sessionId))?.owner, 'process-2');
    // The former holder's wait ends: the task stays recorded for the holder.
    await first.finish(sessionId, taskUUID, 'process-1');
    assert.ok((await first.find(sessionId))?.tasks.has(taskUUID));
    await second.finish(sessionId, taskUUID, 'process-2');
    assert.equal((await first.find(sessionId))?.tasks.has(taskUUID), false);
  });

  test('a session that moved to another process and came back is taken back from the directory, not resumed from the stale copy', async () => {
    const logger = pino({ level: 'silent' });
    const a = new WsSessions({ resumeMs: 60_000, directory: first, logger });
    const b = new WsSessions({ resumeMs: 60_000, directory: second, logger });
    const socket = (): WebSocket => ({ close: () => {} }) as unknown as WebSocket;
    try {
      const principal = { apiKeyId: 'key-moving' };
      const onA = await a.attach(socket(), principal, undefined);
      const id = onA.session.id;
      const t1 = randomUUID();
      a.opened(onA.session, t1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // The socket drops; the client reconnects to B, which takes the session over and waits for t2 there.
      const onB = await b.attach(socket(), principal, id);
      assert.ok(onB.adopted?.tasks.has(t1.toLowerCase()));
      const t2 = randomUUID();
      b.opened(onB.session, t2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // An error of t1 reached the client through B: it was the task's first (error#0) there.
      b.opened(onB.session, t1);
      const tag = onB.session.errorTag(t1);
      assert.equal(tag?.key, 'error#0');
      await second.sent(id, t1, tag!.key, 60_000);
      // It drops again and comes back to A: A's copy is stale; the directory's record (t2 included) is adopted.
      const back = await a.attach(socket(), principal, id);
      assert.notEqual(back.session, onA.session);
      assert.equal(onA.session.ended, true);
      assert.ok(back.adopted?.tasks.has(t2.toLowerCase()), 'the task B waited for is resumed on A');
      back.session.waiting.add(t1.toLowerCase());
      assert.equal(back.session.errorTag(t1)?.key, 'error#1', 'error items go on numbering after a takeover');
      // The stale copy's wait for t1 ending does not drop t1 from the record A now holds.
      a.closed(onA.session, t1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok((await second.find(id))?.tasks.has(t1.toLowerCase()));
    } finally {
      a.close();
      b.close();
    }
  });

  test('an API process keeps its sessions findable while a wait outlasts the resume window', async () => {
    const resumeMs = 600;
    const sessions = new WsSessions({ resumeMs, directory: first, logger: pino({ level: 'silent' }) });
    try {
      // A socket stand-in: the session only keeps it, and closes it when another replaces it.
      const socket = { close: () => {} } as unknown as WebSocket;
      const { session } = await sessions.attach(socket, { apiKeyId: 'key-keeper' }, undefined);
      const taskUUID = randomUUID();
      sessions.opened(session, taskUUID);
      // Three resume windows without a frame: the record is still there for a takeover.
      await new Promise((resolve) => setTimeout(resolve, resumeMs * 3));
      const found = await second.find(session.id);
      assert.equal(found?.apiKeyId, 'key-keeper');
      assert.ok(found?.tasks.has(taskUUID.toLowerCase()));
    } finally {
      sessions.close();
    }
  });

  test('with Redis down, writes are swallowed in bounded time and find rejects with EventBusUnavailableError', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const down = new RedisSessionDirectory({ redisUrl: `redis://127.0.0.1:${port}/0`, prefix: PREFIX });
    try {
      const sessionId = randomUUID();
      const taskUUID = randomUUID();
      const calls: [string, () => Promise<void>][] = [
        ['open', () => down.open(sessionId, 'key-1', taskUUID, TTL_MS)],
        ['sent', () => down.sent(sessionId, taskUUID, 'image-1', TTL_MS)],
        ['touch', () => down.touch(sessionId, TTL_MS)],
        ['claim', () => down.claim(sessionId, 'key-1', 'process-1', TTL_MS)],
        ['finish', () => down.finish(sessionId, taskUUID, 'process-1')],
      ];
      for (const [name, call] of calls) {
        const started = Date.now();
        await call();
        assert.ok(Date.now() - started < 3_000, `${name} took ${Date.now() - started} ms`);
      }
      const findStarted = Date.now();
      await assert.rejects(down.find(sessionId), EventBusUnavailableError);
      assert.ok(Date.now() - findStarted < 4_000, `find took ${Date.now() - findStarted} ms`);
    } finally {
      await down.close();
    }
  });
});
