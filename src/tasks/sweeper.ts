import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { ObjectStore } from '../store/object-store.ts';
import type { TaskStore } from '../store/task-store.ts';

export interface SweeperDeps {
  readonly store: TaskStore;
  readonly objects: ObjectStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly intervalMs: number;
  /** Finished delivery records are kept this long (like the tasks they report on). */
  readonly retentionMs: number;
}

/** Deletes expired images (URL TTLs, upload retention) with their bytes, and expired task records. */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: SweeperDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.deps.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass; concurrent calls share the pass in progress. Returns when it is done. */
  sweep(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    const { store, objects, clock, logger } = this.deps;
    try {
      let images = 0;
      for (;;) {
        const expired = await store.listExpiredImages(clock.now(), 200);
        for (const image of expired) {
          await objects.delete(image.objectKey);
          await store.deleteImage(image.imageUUID);
        }
        images += expired.length;
        if (expired.length < 200) break;
      }
      const tasks = await store.deleteExpiredTasks(clock.now());
      const deliveries = await store.deleteSettledDeliveries(clock.now() - this.deps.retentionMs);
      if (images + tasks + deliveries > 0) logger.info({ images, tasks, deliveries }, 'swept expired records');
    } catch (error) {
      logger.error({ err: error }, 'sweep failed');
    }
  }
}
