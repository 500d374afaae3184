/**
 * Where the scrape-time gauges read their values. Counts that several processes share (queued
 * and running images, pending deliveries, queue jobs) are read from the store and the queue at
 * each scrape, so every process reports the same, right value however many there are; counts
 * of this process (pool, WebSockets) are read from it. Structural types: `metrics/` imports
 * no other folder; `compose.ts` hands the ports in.
 */

/** Cluster-wide counts kept by the task store. */
export interface StoreCounts {
  /** Images of tasks accepted and not yet started. */
  readonly queuedImages: number;
  /** Images of tasks being run (finished images of a running task included). */
  readonly runningImages: number;
  /** Deliveries still pending, by kind (`webhook`, `upload`). */
  readonly pendingDeliveries: Readonly<Record<string, number>>;
}

/** Connections of this process's database pool. */
export interface PoolUse {
  readonly max: number;
  /** Connections open (busy + idle). */
  readonly total: number;
  readonly idle: number;
  /** Statements waiting for a connection. */
  readonly waiting: number;
}

export interface StateSources {
  readonly store: { operatorCounts(): Promise<StoreCounts>; poolUse(): PoolUse | undefined };
  readonly queue: { counts(): Promise<{ waiting: number; running: number }> };
  /** Open WebSocket connections of this process; `undefined` where none are served (workers). */
  readonly webSockets?: () => number | undefined;
}

/** How long a scrape waits for the store or the queue before it reports them as down. */
export const SCRAPE_SOURCE_TIMEOUT_MS = 2_000;
/** One read per source serves every gauge of one scrape (prom-client collects them concurrently): reused while in flight. */

/** Settles with the value, or `undefined` when the call fails or takes longer than `ms`. */
export async function within<T>(call: () => Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      call(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

export interface StateSampler {
  watch(sources: StateSources): void;
  watching(): boolean;
  store(): Promise<StoreCounts | undefined>;
  queue(): Promise<{ waiting: number; running: number } | undefined>;
  pool(): PoolUse | undefined;
  webSockets(): number | undefined;
}

export function createStateSampler(): StateSampler {
  let sources: StateSources | undefined;
  const reused = <T>(read: (s: StateSources) => Promise<T>): (() => Promise<T | undefined>) => {
    let inFlight: Promise<T | undefined> | undefined;
    return () => {
      if (!sources) return Promise.resolve(undefined);
      if (!inFlight) {
        const from = sources;
        const reading = within(() => read(from), SCRAPE_SOURCE_TIMEOUT_MS);
        inFlight = reading;
        // Cleared a turn after it settles, so the other gauges of the same scrape still share it.
        void reading.then(() => setImmediate(() => {
          if (inFlight === reading) inFlight = undefined;
        }));
      }
      return inFlight;
    };
  };
  return {
    watch(given) {
      sources = given;
    },
    watching: () => sources !== undefined,
    store: reused((s) => s.store.operatorCounts()),
    queue: reused((s) => s.queue.counts()),
    pool: () => sources?.store.poolUse(),
    webSockets: () => sources?.webSockets?.(),
  };
}
