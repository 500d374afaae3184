/**
 * The sweeper's order of work: what cannot wait (queued tasks past their deadline) runs first in
 * each pass, and neither it nor the expiry work stops the other when it fails. A real SQLite store
 * and real local object files, with the object store's delete made to fail for one case.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../src/shared/clock.ts';
import { Sweeper } from '../src/tasks/sweeper.ts';
import { LocalObjectStore, type ObjectStore } from '../src/store/object-store.ts';
import { openTaskStore } from '../src/store/open-task-store.ts';
import type { TaskStore } from '../src/store/task-store.ts';
import { recordingLogger } from './helpers/recording-logger.ts';

describe('the sweeper', () => {
  let dir: string;
  let store: TaskStore;
  let files: LocalObjectStore;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-sweeper-'));
    store = await openTaskStore({ sqliteFile: path.join(dir, 'kiln.sqlite') });
    files = new LocalObjectStore(path.join(dir, 'images'));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** An image whose URL expired an hour ago, with its bytes on disk. */
  async function expiredImage(): Promise<string> {
    const objectKey = `${randomUUID()}.jpg`;
    await files.put(objectKey, Buffer.from('jpeg bytes'));
    const now = Date.now();
    await store.insertImage({
      imageUUID: randomUUID(), kind: 'generated', taskUUID: null, apiKeyId: 'key-1', format: 'jpg', width: 8, height: 8, bytes: 10,
      objectKey, createdAt: now - 7_200_000, expiresAt: now - 3_600_000, servable: true,
    });
    return objectKey;
  }

  const sweeperOf = (objects: ObjectStore, steps: string[], errors: string[], first: () => Promise<void>): Sweeper =>
    new Sweeper({
      store,
      objects,
      clock: systemClock,
      logger: recordingLogger(errors),
      intervalMs: 60_000,
      retentionMs: 86_400_000,
      owner: `sweeper-test-${randomUUID()}`,
      first: async () => {
        steps.push('first');
        await first();
      },
      reconcile: async () => void steps.push('reconcile'),
    });

  test('the first step runs before the expiry work, and an object store that fails the expiry does not stop it', async () => {
    await expiredImage();
    const broken: ObjectStore = new Proxy(files, {
      get(target, property, receiver) {
        if (property === 'delete') return () => Promise.reject(new Error('the object store is down'));
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const steps: string[] = [];
    const errors: string[] = [];
    const sweeper = sweeperOf(broken, steps, errors, async () => {});
    await sweeper.sweep();
    await sweeper.stop();
    assert.deepEqual(steps, ['first'], 'the first step ran; the pass stopped at the failing expiry');
    assert.deepEqual(errors, ['sweep failed']);
  });

  test('a first step that fails does not stop the expiry work or the repairs', async () => {
    const objectKey = await expiredImage();
    const steps: string[] = [];
    const errors: string[] = [];
    const sweeper = sweeperOf(files, steps, errors, async () => {
      throw new Error('the store refused the deadline pass');
    });
    await sweeper.sweep();
    await sweeper.stop();
    assert.deepEqual(steps, ['first', 'reconcile']);
    assert.deepEqual(errors, ['sweep: the first step failed']);
    assert.equal(await files.get(objectKey), undefined, 'the expired image was deleted');
    assert.deepEqual(await store.listExpiredImages(Date.now(), 10), []);
  });
});
