import { ApiError, documentationFor, toApiError, unsupportedParameter } from '../errors/index.ts';
import { isUuidV4 } from '../shared/ids.ts';
import { check, fieldError, isPlainObject } from './field-rules.ts';
import type { Task } from './task-types.ts';
import { validateInference } from './validate-inference.ts';
import { z } from 'zod';

export const TASK_TYPES = ['authentication', 'ping', 'imageInference', 'imageUpload', 'getResponse', 'cancelTask', 'getDeliveries', 'redeliver'] as const;

export type TaskParse = { readonly ok: true; readonly task: Task } | { readonly ok: false; readonly error: ApiError };

const imageRule = {
  schema: z.string().min(1),
  code: 'invalidImage',
  rule: 'It must be a data URI, base64 data or an http(s) URL of an image.',
  type: 'string',
} as const;

function requireTaskUUID(raw: Record<string, unknown>, taskType: string): string {
  const value = raw.taskUUID;
  if (value === undefined) {
    throw new ApiError('invalidTaskUUID', "Missing required parameter 'taskUUID'. It must be a valid UUID v4.", {
      parameter: 'taskUUID',
      taskType,
      documentation: documentationFor('taskUUID'),
    });
  }
  if (!isUuidV4(value)) {
    throw new ApiError('invalidTaskUUID', "Invalid value for 'taskUUID' parameter. It must be a valid UUID v4.", {
      parameter: 'taskUUID',
      taskType,
      // Echo what was sent when it is a string, so clients that route by it still can.
      ...(typeof value === 'string' ? { taskUUID: value } : {}),
      documentation: documentationFor('taskUUID'),
    });
  }
  return value;
}

function only(raw: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(raw)) if (!allowed.includes(key)) throw unsupportedParameter(key);
}

function parseOne(raw: unknown): Task {
  if (!isPlainObject(raw)) {
    throw new ApiError('invalidRequestBody', 'Each task must be a JSON object.', { parameter: 'task' });
  }
  const taskType = raw.taskType;
  if (typeof taskType !== 'string') {
    throw new ApiError('unsupportedTaskType', "Missing or invalid 'taskType' parameter.", {
      parameter: 'taskType',
      allowedValues: TASK_TYPES,
      ...(isUuidV4(raw.taskUUID) ? { taskUUID: raw.taskUUID } : {}),
    });
  }
  switch (taskType) {
    case 'authentication': {
      if (typeof raw.apiKey !== 'string' || raw.apiKey.length === 0) {
        throw new ApiError('invalidApiKey', 'Invalid API key.', { parameter: 'apiKey', taskType });
      }
      only(raw, ['taskType', 'apiKey', 'connectionSessionUUID', 'taskUUID']);
      const session = raw.connectionSessionUUID;
      if (session !== undefined && (typeof session !== 'string' || session.length === 0 || session.length > 128)) {
        throw fieldError({ code: 'invalidParameter', rule: 'It must be a UUID string.', type: 'string' }, 'connectionSessionUUID');
      }
      return { taskType, apiKey: raw.apiKey, ...(typeof session === 'string' ? { connectionSessionUUID: session } : {}) };
    }
    case 'ping':
      return { taskType, ...(typeof raw.taskUUID === 'string' ? { taskUUID: raw.taskUUID } : {}) };
    case 'imageInference':
      return validateInference(raw, requireTaskUUID(raw, taskType));
    case 'imageUpload': {
      const taskUUID = requireTaskUUID(raw, taskType);
      only(raw, ['taskType', 'taskUUID', 'image']);
      if (raw.image === undefined) {
        throw new ApiError('invalidImage', "Missing required parameter 'image'.", { parameter: 'image' });
      }
      return { taskType, taskUUID, image: check(imageRule, 'image', raw.image) };
    }
    case 'redeliver': {
      only(raw, ['taskType', 'deliveryId', 'taskUUID']);
      const deliveryId = raw.deliveryId;
      if (typeof deliveryId !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(deliveryId)) {
        throw fieldError({ code: 'invalidParameter', rule: 'It must be the id of a delivery (getDeliveries lists them).', type: 'string' }, 'deliveryId');
      }
      return { taskType, deliveryId, ...(typeof raw.taskUUID === 'string' ? { taskUUID: raw.taskUUID } : {}) };
    }
    case 'getResponse':
    case 'getDeliveries':
    case 'cancelTask': {
      const taskUUID = requireTaskUUID(raw, taskType);
      only(raw, ['taskType', 'taskUUID']);
      return { taskType, taskUUID };
    }
    default:
      throw new ApiError('unsupportedTaskType', `Unsupported task type '${taskType.slice(0, 64)}'.`, {
        parameter: 'taskType',
        allowedValues: TASK_TYPES,
        ...(isUuidV4(raw.taskUUID) ? { taskUUID: raw.taskUUID } : {}),
      });
  }
}

/** Validates one task object. Errors carry the task's `taskType` and (when readable) `taskUUID`. */
export function parseTask(raw: unknown): TaskParse {
  try {
    return { ok: true, task: parseOne(raw) };
  } catch (thrown) {
    const error = toApiError(thrown);
    const taskType = isPlainObject(raw) && typeof raw.taskType === 'string' ? raw.taskType : undefined;
    const taskUUID = isPlainObject(raw) && typeof raw.taskUUID === 'string' ? raw.taskUUID : undefined;
    const details = { ...error.details };
    if (details.taskType === undefined && taskType !== undefined) details.taskType = taskType.slice(0, 64);
    if (details.taskUUID === undefined && taskUUID !== undefined && taskType !== 'authentication') {
      details.taskUUID = taskUUID.slice(0, 128);
    }
    return { ok: false, error: new ApiError(error.code, error.message, details) };
  }
}

/** Parses a request body (REST body or WS frame) into the array of raw tasks, or a body-level error. */
export function parseEnvelope(text: string): { ok: true; tasks: unknown[] } | { ok: false; error: ApiError } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: new ApiError('invalidRequestBody', 'The request body is not valid JSON.') };
  }
  return envelopeFromValue(value);
}

export function envelopeFromValue(value: unknown): { ok: true; tasks: unknown[] } | { ok: false; error: ApiError } {
  if (!Array.isArray(value)) {
    return { ok: false, error: new ApiError('invalidRequestBody', 'The request body must be a JSON array of task objects.') };
  }
  if (value.length === 0) {
    return { ok: false, error: new ApiError('invalidRequestBody', 'The request body must contain at least one task.') };
  }
  if (value.length > 100) {
    return { ok: false, error: new ApiError('invalidRequestBody', 'A request may contain at most 100 tasks.') };
  }
  return { ok: true, tasks: value };
}
