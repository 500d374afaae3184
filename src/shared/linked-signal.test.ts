import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { linkSignals } from './linked-signal.ts';

test('a linked signal aborts with the first source that does, and stops listening to the others', () => {
  const [a, b] = [new AbortController(), new AbortController()];
  const linked = linkSignals(a.signal, undefined, b.signal);
  assert.equal(linked.signal.aborted, false);
  b.abort(new Error('b went'));
  assert.equal(linked.signal.aborted, true);
  assert.equal((linked.signal.reason as Error).message, 'b went');
  assert.equal(getEventListeners(a.signal, 'abort').length, 0);
  a.abort();
  assert.equal((linked.signal.reason as Error).message, 'b went');
});

test('a source that has aborted already aborts the linked signal at once', () => {
  const linked = linkSignals(new AbortController().signal, AbortSignal.abort('gone'));
  assert.equal(linked.signal.aborted, true);
  assert.equal(linked.signal.reason, 'gone');
});

test('disposed links leave nothing behind on a long-lived source (AbortSignal.any would keep one entry each)', () => {
  const shutdown = new AbortController();
  for (let i = 0; i < 10_000; i++) {
    const request = new AbortController();
    const linked = linkSignals(request.signal, shutdown.signal);
    linked.dispose();
    linked.dispose();
  }
  assert.equal(getEventListeners(shutdown.signal, 'abort').length, 0);
  // A disposed link no longer follows its sources.
  const linked = linkSignals(shutdown.signal);
  linked.dispose();
  shutdown.abort();
  assert.equal(linked.signal.aborted, false);
});
