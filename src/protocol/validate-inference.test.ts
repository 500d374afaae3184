import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { ApiError } from '../errors/index.ts';
import { validateInference } from './validate-inference.ts';

const task = (positivePrompt: unknown): Record<string, unknown> => ({ taskType: 'imageInference', model: 'klingai:kling-image@o3', positivePrompt, width: 1024, height: 1024 });
const refused = (positivePrompt: unknown): boolean => {
  try {
    validateInference(task(positivePrompt), randomUUID());
    return false;
  } catch (error) {
    assert.ok(error instanceof ApiError && error.code === 'invalidPositivePrompt', String(error));
    return true;
  }
};

test('prompt length counts characters (code points), not UTF-16 units', () => {
  // 2500 emoji are 5000 UTF-16 units and within the 2500-character limit; one more is over.
  assert.equal(refused('🐉'.repeat(2500)), false);
  assert.equal(refused('🐉'.repeat(2501)), true);
  assert.equal(refused('a'.repeat(2499) + '🐉'), false);
  assert.equal(refused('a'.repeat(2500) + '🐉'), true);
  // A lone surrogate is one unit, counted as one character.
  assert.equal(refused('\ud800'.repeat(2500)), false);
});

test('a prompt of many megabytes is refused, and a blank one too', () => {
  assert.equal(refused('x'.repeat(32 * 1024 * 1024)), true);
  assert.equal(refused(' '.repeat(10)), true);
  assert.equal(refused('\n\t'), true);
});
