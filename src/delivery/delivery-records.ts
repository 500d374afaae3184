import { newUuid } from '../shared/ids.ts';
import type { DeliveryRecord } from '../store/task-store.ts';

interface Target {
  readonly taskUUID: string;
  readonly apiKeyId: string;
  readonly now: number;
}

function record(
  target: Target,
  fields: Pick<DeliveryRecord, 'kind' | 'url' | 'imageUUID' | 'body' | 'objectKey'> & { notifyUrl?: string | null },
): DeliveryRecord {
  return {
    id: newUuid(),
    taskUUID: target.taskUUID,
    apiKeyId: target.apiKeyId,
    notifyUrl: null,
    ...fields,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: target.now,
    lastError: null,
    createdAt: target.now,
  };
}

/** A webhook POST of `{"data":[item]}` (kiln-extensions.md: one POST per image). */
export function webhookForItem(target: Target, url: string, imageUUID: string, item: Readonly<Record<string, unknown>>): DeliveryRecord {
  return record(target, { kind: 'webhook', url, imageUUID, body: JSON.stringify({ data: [item] }), objectKey: null });
}

/** A webhook POST of `{"errors":[error]}`. */
export function webhookForError(target: Target, url: string, error: Readonly<Record<string, unknown>>, imageUUID: string | null = null): DeliveryRecord {
  return record(target, { kind: 'webhook', url, imageUUID, body: JSON.stringify({ errors: [error] }), objectKey: null });
}

/** An upload PUT of the stored image's bytes; `notifyUrl` (the task's webhook) hears if it fails. */
export function uploadOf(target: Target, url: string, imageUUID: string, objectKey: string, notifyUrl: string | null): DeliveryRecord {
  return record(target, { kind: 'upload', url, imageUUID, body: null, objectKey, notifyUrl });
}
