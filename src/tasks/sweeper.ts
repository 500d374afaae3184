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
  /** This process's name in the `sweeper` lease: one process sweeps at a time across a cluster. */
  readonly owner: string;
  /** Extra repairs run by the lease holder after each sweep (requeue lost tasks, free stale admissions). */
  reconcile?(): Promise<void>;
  /**
   * What cannot wait behind the sweep (queued tasks past their deadline): run by the lease holder
   * first in each pass, before the expiry work, whose failures (an object store that is down) it
   * does not share.
   */
  first?(): Promise<void>;
}

const LEASE = 'sweeper';

/**
 * Deletes expired images (URL TTLs, upload retention) with their bytes, expired task records
 * and old delivery records. One process at a time does it: each pass first takes or renews
 * the `sweeper` lease in the store (a process that dies loses it after two intervals).
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: SweeperDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.deps.intervalMs);
    this.timer.unref();
  }

  /** Stops sweeping and gives the lease up (another process takes over at once). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.deps.store.releaseLease(LEASE, this.deps.owner).catch(() => undefined);
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
      const now = clock.now();
      if (!(await store.acquireLease(LEASE, this.deps.owner, now + 2 * this.deps.intervalMs, now))) return;
      await this.deps.first?.().catch((error: unknown) => logger.error({ err: error }, 'sweep: the first step failed'));
      let images = 0;
      for (;;) {
        const cut = clock.now();
        // A long pass (many images, a slow object store) renews its lease batch by batch, and
        // stops should another process hold it meanwhile.
        if (images > 0 && !(await store.acquireLease(LEASE, this.deps.owner, cut + 2 * this.deps.intervalMs, cut))) return;
        const expired = await store.listExpiredImages(cut, 200);
        for (const image of expired) {
          // The row goes first, and only while still expired: an upload used (its life extended)
          // since it was listed keeps its bytes. Bytes left by a crash right here are orphans,
          // never a row without its image.
          if (await store.deleteImage(image.imageUUID, cut)) await objects.delete(image.objectKey);
        }
        images += expired.length;
        if (expired.length < 200) break;
      }
      const tasks = await store.deleteExpiredTasks(clock.now());
      const deliveries = await store.deleteSettledDeliveries(clock.now() - this.deps.retentionMs);
      if (images + tasks + deliveries > 0) logger.info({ images, tasks, deliveries }, 'swept expired records');
      await this.deps.reconcile?.();
    } catch (error) {
      logger.error({ err: error }, 'sweep failed');
    }
  }
}
