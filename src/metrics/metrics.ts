import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createStateSampler, type StateSources } from './state-sources.ts';

export type { StateSources } from './state-sources.ts';

/**
 * The stages of a task, each timed in `kiln_stage_seconds{stage,model,engine}`:
 * - `queue_wait`: acceptance to the start of a run (once per run; a resumed task waits again),
 * - `inputs`: resolving reference images and elements (once per run),
 * - `render`: engine time per engine call (handing images to the encode stage left out),
 * - `encode`, `safety`, `store`, `deliver`: per image (`safety` only when it runs; it runs
 *   beside `encode`, so the two overlap).
 */
export type Stage = 'queue_wait' | 'inputs' | 'render' | 'encode' | 'safety' | 'store' | 'deliver';

/** How a task ended: every image made, some failed, or every image failed. */
export type TaskOutcome = 'success' | 'partial' | 'failed';

export type DeliveryKind = 'webhook' | 'upload';

/** Kiln's Prometheus metrics, on one registry served at `/metrics` (docs/operations.md lists them all). */
export interface Metrics {
  readonly registry: Registry;
  /** Inference tasks accepted (`delivery`: sync or async). */
  readonly tasks: Counter<'model' | 'delivery'>;
  readonly images: Counter<'model' | 'outcome'>;
  /** Time per stage (see `Stage` for what each observation covers). */
  readonly stageSeconds: Histogram<'stage' | 'model' | 'engine'>;
  /** Acceptance to the first result of a task (observed once per task, when its first image is stored). */
  readonly firstResultSeconds: Histogram<'model' | 'engine'>;
  /** Acceptance to the end of a task, by outcome (observed once per task, at its end). */
  readonly taskSeconds: Histogram<'model' | 'engine' | 'outcome'>;
  readonly safetyChecks: Counter<'verdict'>;
  /** Classifier time per check (outputs and, with KILN_SAFETY_CHECK_INPUTS, inputs). */
  readonly safetySeconds: Histogram;
  /** Webhook POST and upload PUT attempts: `success`, `retry` or `gave_up`. */
  readonly deliveryAttempts: Counter<'kind' | 'outcome'>;
  /** Time per attempt, by outcome. */
  readonly deliveryAttemptSeconds: Histogram<'kind' | 'outcome'>;
  /** Creation of a delivery to its final state (`delivered` or `failed`), retries included. */
  readonly deliverySeconds: Histogram<'kind' | 'outcome'>;
  /**
   * Gives the scrape-time gauges (queued/running images, pending deliveries, queue jobs, pool
   * use, WebSocket sessions) their sources; until then they report nothing.
   */
  watch(sources: StateSources): void;
  /** USD charged per API key (label = key id), counted where the image was charged (docs/tenancy.md). */
  readonly keySpend?: Counter<'key'>;
  /** Gives `kiln_key_queued_images` / `kiln_key_running_images` their source (images held per key, cluster-wide). */
  watchKeys?(source: () => Promise<readonly KeyImages[]>): void;
}

/** Images held by one API key's tasks (docs/tenancy.md). */
export interface KeyImages {
  readonly apiKeyId: string;
  readonly queuedImages: number;
  readonly runningImages: number;
}

const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const TASK_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
const DELIVERY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const state = createStateSampler();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], read: (g: Gauge<L>) => Promise<void>): Gauge<L> =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset();
        await read(this);
      },
    });
  gauge('kiln_queued_images', 'Images of tasks accepted and not started, cluster-wide (from the task store)', [], async (g) => {
    // NaN when the store did not answer (a label-less gauge would otherwise read 0); see kiln_source_up.
    g.set((await state.store())?.queuedImages ?? Number.NaN);
  });
  gauge('kiln_running_images', 'Images of tasks being run, cluster-wide (from the task store)', [], async (g) => {
    g.set((await state.store())?.runningImages ?? Number.NaN);
  });
  gauge('kiln_pending_deliveries', 'Webhooks and uploads not yet delivered nor given up, cluster-wide (from the task store)', ['kind'], async (g) => {
    const counts = await state.store();
    if (!counts) return;
    for (const kind of ['webhook', 'upload'] as const) g.set({ kind }, counts.pendingDeliveries[kind] ?? 0);
  });
  gauge('kiln_queue_jobs', 'Jobs in the task queue by state (waiting includes retries backing off), cluster-wide', ['state'], async (g) => {
    const counts = await state.queue();
    if (!counts) return;
    g.set({ state: 'waiting' }, counts.waiting);
    g.set({ state: 'running' }, counts.running);
  });
  gauge('kiln_source_up', 'Whether the source of the scrape-time gauges answered this scrape (1) or not (0)', ['source'], async (g) => {
    const [store, queue] = await Promise.all([state.store(), state.queue()]);
    if (!state.watching()) return;
    g.set({ source: 'store' }, store ? 1 : 0);
    g.set({ source: 'queue' }, queue ? 1 : 0);
  });
  gauge('kiln_websocket_sessions', 'Open WebSocket connections on /v1 in this process (0 on workers)', [], async (g) => {
    g.set(state.webSockets() ?? 0);
  });
  gauge('kiln_store_pool_connections', 'Task store (PostgreSQL) pool connections in this process, by state', ['state'], async (g) => {
    const pool = state.pool();
    if (!pool) return;
    g.set({ state: 'busy' }, Math.max(0, pool.total - pool.idle));
    g.set({ state: 'idle' }, pool.idle);
  });
  gauge('kiln_store_pool_max_connections', 'Size limit of the task store pool in this process (KILN_DATABASE_POOL)', [], async (g) => {
    const pool = state.pool();
    if (pool) g.set(pool.max);
  });
  gauge('kiln_store_pool_waiting_requests', 'Statements waiting for a free task store connection in this process', [], async (g) => {
    const pool = state.pool();
    if (pool) g.set(pool.waiting);
  });
  // Per-key gauges (docs/tenancy.md): read at scrape time from the tenancy holds, cluster-wide.
  let keySource: (() => Promise<readonly KeyImages[]>) | undefined;
  const keyLoads = async (): Promise<readonly KeyImages[]> => (keySource ? await keySource().catch(() => []) : []);
  gauge('kiln_key_queued_images', 'Images of tasks accepted and not started, per API key id, cluster-wide', ['key'], async (g) => {
    for (const load of await keyLoads()) g.set({ key: load.apiKeyId }, load.queuedImages);
  });
  gauge('kiln_key_running_images', 'Images of tasks being run and not yet settled, per API key id, cluster-wide', ['key'], async (g) => {
    for (const load of await keyLoads()) g.set({ key: load.apiKeyId }, load.runningImages);
  });
  return {
    registry,
    keySpend: new Counter({ name: 'kiln_key_spend_usd_total', help: 'USD charged per API key id (counted by the process that charged the image)', labelNames: ['key'], registers }),
    watchKeys: (source) => {
      keySource = source;
    },
    tasks: new Counter({ name: 'kiln_tasks_total', help: 'Inference tasks accepted', labelNames: ['model', 'delivery'], registers }),
    images: new Counter({ name: 'kiln_images_total', help: 'Images finished, by outcome (success or the error code)', labelNames: ['model', 'outcome'], registers }),
    stageSeconds: new Histogram({
      name: 'kiln_stage_seconds',
      help: 'Time per task stage: queue_wait and inputs per run, render per engine call, encode/safety/store/deliver per image',
      labelNames: ['stage', 'model', 'engine'],
      buckets: STAGE_BUCKETS,
      registers,
    }),
    firstResultSeconds: new Histogram({
      name: 'kiln_task_first_result_seconds',
      help: 'Time from acceptance to the first stored image of a task',
      labelNames: ['model', 'engine'],
      buckets: TASK_BUCKETS,
      registers,
    }),
    taskSeconds: new Histogram({
      name: 'kiln_task_duration_seconds',
      help: 'Time from acceptance to the end of a task (end to end), by outcome',
      labelNames: ['model', 'engine', 'outcome'],
      buckets: TASK_BUCKETS,
      registers,
    }),
    safetyChecks: new Counter({ name: 'kiln_safety_checks_total', help: 'Safety checks, by verdict', labelNames: ['verdict'], registers }),
    safetySeconds: new Histogram({
      name: 'kiln_safety_check_seconds',
      help: 'Classifier time per safety check (downscale + inference)',
      buckets: [0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.5, 1, 2],
      registers,
    }),
    deliveryAttempts: new Counter({
      name: 'kiln_delivery_attempts_total',
      help: 'Webhook POST and upload PUT attempts, by outcome (success, retry, gave_up)',
      labelNames: ['kind', 'outcome'],
      registers,
    }),
    deliveryAttemptSeconds: new Histogram({
      name: 'kiln_delivery_attempt_seconds',
      help: 'Time per webhook or upload attempt, by outcome',
      labelNames: ['kind', 'outcome'],
      buckets: DELIVERY_BUCKETS,
      registers,
    }),
    deliverySeconds: new Histogram({
      name: 'kiln_delivery_seconds',
      help: 'Time from the creation of a webhook or upload to its final state (delivered or failed), retries included',
      labelNames: ['kind', 'outcome'],
      buckets: DELIVERY_BUCKETS,
      registers,
    }),
    watch: (sources) => state.watch(sources),
  };
}

/** How one delivery attempt ended: delivered, will be retried, or given up for good. */
export type DeliveryAttemptOutcome = 'success' | 'retry' | 'gave_up';

/**
 * Counts and times one webhook or upload attempt; an attempt that settles the delivery
 * (success or gave_up) also observes the delivery's whole time since it was created
 * (`now` and `createdAt` on the store's clock).
 */
export function observeDeliveryAttempt(
  metrics: Metrics | undefined,
  delivery: { readonly kind: DeliveryKind; readonly createdAt: number },
  outcome: DeliveryAttemptOutcome,
  attemptMs: number,
  now: number,
): void {
  if (!metrics) return;
  metrics.deliveryAttempts.inc({ kind: delivery.kind, outcome });
  metrics.deliveryAttemptSeconds.observe({ kind: delivery.kind, outcome }, Math.max(0, attemptMs) / 1000);
  if (outcome === 'retry') return;
  const final = outcome === 'success' ? 'delivered' : 'failed';
  metrics.deliverySeconds.observe({ kind: delivery.kind, outcome: final }, Math.max(0, now - delivery.createdAt) / 1000);
}
