import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { test } from 'node:test';
import { collectGarbage } from './collect-garbage.ts';

/** An object only a WeakRef points to, made in a turn of its own (a WeakRef keeps its target for the rest of the turn that made it). */
async function unreachable(): Promise<WeakRef<object>> {
  const ref = new WeakRef({ payload: new Array(1000).fill('garbage') });
  await nextTurn();
  return ref;
}

test('collectGarbage collects the heap without --expose-gc, and leaves gc unexposed', async () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'the suite runs without --expose-gc');
  const refs = await Promise.all(Array.from({ length: 3 }, unreachable));
  const ms = collectGarbage();
  assert.ok(Number.isFinite(ms) && ms >= 0);
  assert.deepEqual(
    refs.map((ref) => ref.deref()),
    [undefined, undefined, undefined],
    'the unreachable objects are gone',
  );
  // Still reachable objects survive, and a second call works (the flag is off again, the function kept).
  const kept = { alive: true };
  const keptRef = new WeakRef(kept);
  await nextTurn();
  collectGarbage();
  assert.equal(keptRef.deref(), kept);
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc is not left on the global object');
});
