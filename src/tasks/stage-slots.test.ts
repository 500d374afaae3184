import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import type { ImageEngine } from '../engines/spec/image-engine.ts';
import { Slots, stageSlots } from './stage-slots.ts';

/** Whether `promise` has settled after the pending microtasks and one macrotask ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('stage slots', () => {
  test('a slot count and a weight budget: first come, first served; a holder over the budget gets in alone', async () => {
    const slots = new Slots(3, 10);
    const a = await slots.acquire(6);
    const b = slots.acquire(6); // 12 > 10: waits for a
    const c = slots.acquire(1); // fits, but waits behind b (FIFO)
    assert.equal(await settled(b), false);
    assert.equal(await settled(c), false);
    a();
    a(); // a second release does nothing
    const releaseB = await b;
    const releaseC = await c;
    const heavy = slots.acquire(25); // over the budget: waits until it is alone
    assert.equal(await settled(heavy), false);
    releaseB();
    assert.equal(await settled(heavy), false);
    releaseC();
    const releaseHeavy = await heavy;
    const next = slots.acquire(1);
    assert.equal(await settled(next), false, 'nothing joins a holder over the budget');
    releaseHeavy();
    (await next)();
  });

  test('the encode stage holds one 4096² image at a time, but several 2496×1664 ones', async () => {
    const engine = { name: 'test', concurrency: 2 } as unknown as ImageEngine;
    const { encode } = stageSlots({}, engine);
    assert.equal(encode.size, Math.max(1, availableParallelism()));
    const first = await encode.acquire(4096 * 4096);
    const second = encode.acquire(4096 * 4096);
    assert.equal(await settled(second), false, 'a second 4K encode waits');
    first();
    (await second)();
    if (encode.size >= 2) {
      const small = await Promise.all([encode.acquire(2496 * 1664), encode.acquire(2496 * 1664)]);
      for (const release of small) release();
    }
  });
});
