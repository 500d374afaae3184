import type { DeliveryAttempt, DeliveryRecord } from '../store/task-store.ts';

/** A delivery as getDeliveries shows it (times in ISO 8601, the receiver by host). */
export function describeDelivery(delivery: DeliveryRecord, attempts: readonly DeliveryAttempt[]): Record<string, unknown> {
  const iso = (ms: number): string => new Date(ms).toISOString();
  let host = '';
  try {
    host = new URL(delivery.url).host;
  } catch {
    // Stored URLs were valid when accepted; an unreadable one is shown without a host.
  }
  return {
    deliveryId: delivery.id,
    kind: delivery.kind,
    host,
    imageUUID: delivery.imageUUID,
    status: delivery.status,
    attempts: attempts.map((a) => ({
      attempt: a.attempt,
      at: iso(a.at),
      ...(a.httpStatus === null ? {} : { httpStatus: a.httpStatus }),
      ...(a.error === null ? {} : { error: a.error }),
      latencyMs: a.latencyMs,
    })),
    ...(delivery.status === 'pending' ? { nextAttemptAt: iso(delivery.nextAttemptAt) } : {}),
    ...(delivery.lastError === null ? {} : { lastError: delivery.lastError }),
  };
}
