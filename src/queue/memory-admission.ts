import { systemClock, type Clock } from '../shared/clock.ts';
import type { Admission, ReserveOutcome } from './admission.ts';

export interface MemoryAdmissionOptions {
  /** Images that may be reserved at once (waiting or running), in this process. */
  readonly capacity: number;
  /** Stamps reservations for `listOlderThan`. Default: the system clock. */
  readonly clock?: Clock;
}

/** Admission counted in this process: the default when Kiln runs as one process. */
export class MemoryAdmission implements Admission {
  private readonly reservations = new Map<string, { images: number; at: number }>();
  private total = 0;
  private readonly capacity: number;
  private readonly clock: Clock;

  constructor(options: MemoryAdmissionOptions) {
    this.capacity = checkCount(options.capacity, 'capacity');
    this.clock = options.clock ?? systemClock;
  }

  async reserve(taskUUID: string, images: number, options: { force?: boolean } = {}): Promise<ReserveOutcome> {
    checkCount(images, 'images');
    if (this.reservations.has(taskUUID)) return 'kept';
    if (!options.force && this.total + images > this.capacity) return 'full';
    this.reservations.set(taskUUID, { images, at: this.clock.now() });
    this.total += images;
    return 'reserved';
  }

  async release(taskUUID: string): Promise<void> {
    const reservation = this.reservations.get(taskUUID);
    if (!reservation) return;
    this.reservations.delete(taskUUID);
    this.total -= reservation.images;
  }

  async reserved(): Promise<number> {
    return this.total;
  }

  async listOlderThan(before: number): Promise<string[]> {
    return [...this.reservations].filter(([, reservation]) => reservation.at < before).map(([taskUUID]) => taskUUID);
  }

  async close(): Promise<void> {}
}

/** A non-negative integer, or a RangeError naming the field. */
export function checkCount(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}
