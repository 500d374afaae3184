import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseState, serializeState, SlotAssigner } from './call-state.ts';

const slots = [
  { index: 4, seed: 10 },
  { index: 5, seed: 11 },
  { index: 6, seed: 12 },
];

describe('call state', () => {
  test('round-trips, accepts a bare taskUUID, ignores garbage', () => {
    const state = { version: 1 as const, upstream: 'e5b1c7c2-6a59-4a6e-9d7a-0f5f0d6a1b2c', expected: 3, assigned: { a: 4 } };
    assert.deepEqual(parseState(serializeState(state)), state);
    assert.deepEqual(parseState(state.upstream), { version: 1, upstream: state.upstream, expected: 0, assigned: {} });
    assert.equal(parseState(undefined), undefined);
    assert.equal(parseState('{"nope":1}'), undefined);
    assert.equal(parseState('not json'), undefined);
  });

  test('assigns in arrival order, prefers the slot with the same seed, never twice', () => {
    const assigner = new SlotAssigner(slots, {});
    assert.equal(assigner.assign({ imageUUID: 'x', seed: 12 })?.slot.index, 6);
    assert.equal(assigner.assign({ imageUUID: 'y', seed: 999 })?.slot.index, 4);
    assert.equal(assigner.assign({ imageUUID: 'y', seed: 999 }), undefined, 'same image again');
    assert.equal(assigner.complete, false);
    assert.equal(assigner.assign({ imageUUID: 'z' })?.slot.index, 5);
    assert.equal(assigner.assign({ imageUUID: 'extra' }), undefined, 'no free slot');
    assert.equal(assigner.complete, true);
    assert.deepEqual(assigner.snapshot(), { x: 6, y: 4, z: 5 });
  });

  test('after a restart an image keeps its slot, and slots finished earlier are skipped', () => {
    // Slot 4 was settled before the crash; the upstream image "a" filled it.
    const assigner = new SlotAssigner(slots.slice(1), { a: 4, b: 6 });
    assert.equal(assigner.assign({ imageUUID: 'a' }), undefined);
    assert.deepEqual(assigner.assign({ imageUUID: 'b' }), { slot: slots[2], isNew: false });
    assert.deepEqual(assigner.assign({ imageUUID: 'c' }), { slot: slots[1], isNew: true });
    assert.equal(assigner.complete, true);
  });

  test('series images go to the slot of their seriesIndex; others are extras', () => {
    const series = [
      { index: 1, seed: 5, seriesIndex: 1 },
      { index: 2, seed: 6, seriesIndex: 2 },
    ];
    const assigner = new SlotAssigner(series, {});
    assert.equal(assigner.assign({ imageUUID: 'p', seriesIndex: 0 }), undefined);
    assert.equal(assigner.assign({ imageUUID: 'q', seriesIndex: 2 })?.slot.index, 2);
    assert.equal(assigner.assign({ imageUUID: 'r', seriesIndex: 1 })?.slot.index, 1);
  });
});
