import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay } from './backoff.ts';
import { hasEnded, readPoll } from './poll-view.ts';
import { isNotFoundError, toKilnError } from './upstream-errors.ts';

describe('upstream errors and polls', () => {
  test('an upstream error keeps its code, message, parameter and hints', () => {
    const error = toKilnError({
      code: 'unsupportedDimensions',
      message: 'Unsupported use of width/height parameters.',
      parameter: ['width', 'height'],
      allowedValues: { '1:1': '1024x1024' },
      taskUUID: 'upstream-task',
      taskType: 'imageInference',
    });
    assert.equal(error.code, 'unsupportedDimensions');
    assert.equal(error.status, 400);
    assert.deepEqual(error.toJSON(), {
      code: 'unsupportedDimensions',
      message: 'Unsupported use of width/height parameters.',
      parameter: ['width', 'height'],
      allowedValues: { '1:1': '1024x1024' },
    });
    assert.equal(error.forTask('kiln-task', 'imageInference').toJSON().taskUUID, 'kiln-task');
  });

  test('unknown codes and provider faults become providerError; the key is never the user’s', () => {
    assert.equal(toKilnError({ code: 'someNewCode', message: 'm' }).code, 'providerError');
    assert.equal(toKilnError({ code: 'internalServerError', message: 'm' }).code, 'providerError');
    assert.equal(toKilnError({ code: 'invalidApiKey', message: 'm' }).code, 'providerError');
    assert.equal(toKilnError({ code: 'timeoutProvider', message: 'm' }).code, 'timeoutProvider');
    assert.ok(isNotFoundError({ code: 'taskNotFound' }) && isNotFoundError({ code: 'taskFailedOrNotFound' }));
  });

  test('a poll sorts successes, processing items, generation failures and faults', () => {
    const view = readPoll({
      data: [
        { status: 'success', imageUUID: 'a' },
        { status: 'processing' },
        { taskType: 'imageInference', taskUUID: 't' },
        { status: 'error', error: { code: 'x' } },
      ],
      errors: [{ code: 'timeoutProvider', status: 'error' }, { code: 'serviceUnavailable', taskType: 'getResponse' }],
    });
    assert.equal(view.successes.length, 1);
    assert.equal(view.processing, 1);
    assert.deepEqual(view.failures.map((f) => f.code), ['x', 'timeoutProvider']);
    assert.equal(view.fault?.code, 'serviceUnavailable');
    assert.equal(hasEnded(view, 3), false);
    assert.equal(hasEnded({ successes: [{}], processing: 0, failures: [] }, 2), false);
    assert.equal(hasEnded({ successes: [{}, {}], processing: 0, failures: [] }, 2), true);
    assert.equal(hasEnded({ successes: [], processing: 0, failures: [{}] }, 2), true);
  });

  test('backoff grows exponentially with jitter and a cap', () => {
    assert.equal(backoffDelay(1, 100, 1_000, () => 0), 50);
    assert.equal(backoffDelay(3, 100, 1_000, () => 1), 400);
    assert.equal(backoffDelay(10, 100, 1_000, () => 1), 1_000);
  });
});
