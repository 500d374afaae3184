import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settleAll } from './settle-all.ts';

test('settleAll answers every value, or the first rejection in argument order once all have settled', async () => {
  assert.deepEqual(await settleAll([Promise.resolve(1), 'two', undefined]), [1, 'two', undefined]);
  let slowDone = false;
  const slow = new Promise<void>((resolve) => setTimeout(() => ((slowDone = true), resolve()), 30));
  const first = new Error('first');
  const second = new Error('second');
  const late = new Promise((_, reject) => setTimeout(() => reject(first), 10));
  await assert.rejects(settleAll([late, Promise.reject(second), slow]), (error) => error === first);
  assert.ok(slowDone, 'nothing is left running when it throws');
});
