import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { parseTask } from './protocol/validate-task.ts';
import { newUuid } from './shared/ids.ts';
import type { TaskStore } from './store/task-store.ts';
import pino from 'pino';
import { buildOpsServer, buildServer } from './api/server.ts';
import { ConfigError, type Config } from './config/config.ts';
import type { ImageEngine, RawImage } from './engines/spec/image-engine.ts';
import { createRunwareEngine, type UpstreamImageDownload } from './engines/runware/runware-engine.ts';
import { ApiError } from './errors/index.ts';
import { createStudioEngine, type StudioEngine } from './engines/studio/studio-engine.ts';
import { encodeRaw, setImageThreads, type EncodeOptions } from './imaging/encode.ts';
import { createSafetyChecker } from './imaging/safety/safety-checker.ts';
import { createSafetyClassifier } from './imaging/safety/safety-classifier.ts';
import { DeliveryService } from './delivery/delivery-service.ts';
import { checkDeliveryTarget } from './delivery/target-check.ts';
import { createImageInputs } from './inputs/image-inputs.ts';
import { portProblem } from './net/port-rule.ts';
import { FetchError } from './net/fetch-error.ts';
import { createSafeFetch, type SafeFetch } from './net/safe-fetch.ts';
import { createMetrics } from './metrics/metrics.ts';
import { checkReadiness } from './metrics/readiness.ts';
import { KILN_STUDIO, KLING_O3, MODELS } from './models/model-registry.ts';
import { systemClock, type Clock } from './shared/clock.ts';
import type { Logger } from './shared/logger.ts';
import { openKeyHasher, openServices } from './open-services.ts';
import { ApiKeys } from './tasks/api-keys.ts';
import type { EngineRegistry } from './tasks/ports.ts';
import { Sweeper } from './tasks/sweeper.ts';
import { TaskService } from './tasks/task-service.ts';
import { Tenancy } from './tasks/tenancy.ts';
import { MemoryRateLimiter } from './queue/rate-limiter.ts';
import { collectGarbage } from './shared/collect-garbage.ts';
import { untunedAllocatorWarning } from './shared/malloc-tuning.ts';

/** A running Kiln server and how to stop it. */
export interface Kiln {
  readonly app: FastifyInstance;
  readonly service: TaskService;
  readonly apiKeys: ApiKeys;
  /** The base URL the server answers on (e.g. `http://127.0.0.1:41234`). */
  readonly url: string;
  /** A key created at first start when none was configured (shown once). */
  readonly createdKey: string | undefined;
  /** Runs one expiry sweep now (the sweeper also runs on its interval; workers and `serve` only). */
  sweep(): Promise<void>;
  /** Stops accepting, drains in-flight tasks for up to `drainMs`, closes everything. */
  close(drainMs?: number): Promise<void>;
}

export interface ComposeOptions {
  readonly clock?: Clock;
  /** A pino destination (tests pass a silent or captured one). */
  readonly logStream?: pino.DestinationStream;
  /**
   * Engines that serve these model ids in place of the configured routes. For tests and the
   * bench only (a test engine lives in test code, never in the model registry); they are closed
   * with the server.
   */
  readonly engines?: ReadonlyMap<string, ImageEngine>;
}

/**
 * Which engine serves each model: `klingai:kling-image@o3` goes to `runware` when a Runware key
 * is configured, else to `studio`; `kiln:studio@1` always to `studio`; KILN_ROUTES pins any
 * model to any available engine on top of that.
 */
function routeModels(config: Config, available: ReadonlyMap<string, ImageEngine>): Map<string, ImageEngine> {
  const studio = available.get('studio') as ImageEngine;
  const routes = new Map([...MODELS.keys()].map((id) => [id, id === KLING_O3.id ? (available.get('runware') ?? studio) : studio]));
  const problems: string[] = [];
  for (const [model, engineName] of Object.entries(config.routes)) {
    const engine = available.get(engineName);
    if (!MODELS.has(model)) problems.push(`KILN_ROUTES: unknown model ${model}`);
    else if (!engine) problems.push(`KILN_ROUTES: engine ${engineName} is not available (known: ${[...available.keys()].join(', ')})`);
    else if (model === KILN_STUDIO.id && engineName !== 'studio') problems.push(`KILN_ROUTES: ${model} is served only by studio`);
    else routes.set(model, engine);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return routes;
}

function engineRegistry(engines: Map<string, ImageEngine>, available: ReadonlyMap<string, ImageEngine>): EngineRegistry {
  return {
    forModel(model) {
      const engine = engines.get(model);
      if (!engine) throw new Error(`no engine serves ${model}`);
      return engine;
    },
    all: () => [...available.values()],
  };
}

/**
 * Reconciles KILN_API_KEYS with the store, and creates a key file on first start when no
 * valid key exists, so a fresh `npm start` is usable.
 */
async function ensureInitialKey(config: Config, apiKeys: ApiKeys, logger: Logger): Promise<string | undefined> {
  const { added, revoked } = await apiKeys.reconcile(config.apiKeys, config.webhookSecret ?? null);
  if (added > 0 || revoked > 0) logger.info({ added, revoked }, 'KILN_API_KEYS reconciled with the stored keys');
  if ((await apiKeys.count()) > 0) return undefined;
  if (config.role !== 'serve') {
    // A cluster has no single data dir to leave a key file in: keys are configured.
    logger.warn('No API key exists yet: create one with `kiln keys create` (or set KILN_API_KEYS) before clients connect.');
    return undefined;
  }
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const { key, webhookSecret: secret } = await apiKeys.create('created at first start', 'first-start');
  const file = path.join(config.dataDir, 'api-key.txt');
  await writeFile(file, `${key}\nwebhook secret: ${secret}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  // The key itself stays out of the logs (they travel further than a terminal): it is printed
  // once on stderr by main.ts and kept in the 0600 file.
  logger.warn({ file }, 'No API key was configured, so one was created; it and its webhook secret are in the key file.');
  return key;
}

/**
 * Encodes the warm-up runs at once: one per thread of libuv's pool, where sharp encodes (its size
 * is read from the environment at the first use), at most 8 (each holds ~40 MB meanwhile).
 */
const WARM_ENCODES = Math.min(8, Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4));

/** How long the start waits for the warm-up before answering; past it the warm-up stops. */
const WARM_UP_BUDGET_MS = 4_000;

/**
 * How the `runware` engine downloads images its upstream returns as URLs: through the guarded
 * client, so an upstream answer cannot aim Kiln at a private address or another port (engines
 * may not import `net/`, so they get this function). KILN_ALLOW_PRIVATE_URLS lifts the checks,
 * as for every outbound request (an upstream Kiln on loopback in tests).
 */
export function upstreamDownloader(http: SafeFetch): UpstreamImageDownload {
  return async (url, { signal, timeoutMs, maxBytes }) => {
    try {
      const response = await http.request(url, { signal, totalTimeoutMs: timeoutMs, maxBytes, headers: { accept: 'image/*' } });
      return response.body;
    } catch (error) {
      if (!(error instanceof FetchError) || error.reason === 'aborted') throw error;
      const permanent = error.reason === 'tooLarge' || error.reason === 'blockedAddress' || error.reason === 'badUrl';
      throw new ApiError('providerError', `The upstream image could not be downloaded: ${error.message}`, { retryable: !permanent });
    }
  };
}

/**
 * Starts the studio workers and runs a few renders and a sharp encode, so that the first
 * requests after a start are not paying for module loading and JIT compilation. Waits at most
 * `WARM_UP_BUDGET_MS`, then stops it; a failed warm-up is only logged (the engine starts its workers on demand).
 */
async function warmUp(studio: StudioEngine, logger: Logger, app: FastifyInstance | undefined, store: TaskStore, encoding: EncodeOptions): Promise<void> {
  const started = Date.now();
  // Past the budget the warm-up stops (what already runs finishes), so requests do not queue behind it.
  const budget = AbortSignal.timeout(WARM_UP_BUDGET_MS);
  // The encoder at the O3 default size and format, on a real render (a flat image leaves the
  // encoder's buffers small), on every thread of libuv's pool at the same time, twice over:
  // each thread allocates from its own heap, and the first real encodes after a start took up to
  // half as long again until a thread had done a few (one round of this left them at ~1.4×).
  // They start with the first large render and run beside the rest of the studio's warm-up.
  let large: (pixels: RawImage) => void = () => {};
  const firstLarge = new Promise<RawImage>((resolve) => (large = resolve));
  const encodes = async (): Promise<void> => {
    const pixels = await Promise.race([firstLarge, new Promise<undefined>((resolve) => budget.addEventListener('abort', () => resolve(undefined), { once: true }))]);
    if (!pixels || budget.aborted) return;
    for (let round = 0; round < 2 && !budget.aborted; round++) await Promise.all(Array.from({ length: WARM_ENCODES }, () => encodeRaw(pixels, 'jpg', 95, encoding)));
    if (!budget.aborted) await encodeRaw(pixels, 'png', 90);
  };
  // The request path of this process (routing, body parsing, validation), through fastify's
  // in-process injection: a task refused for its key runs every step up to authentication.
  const requests = async (): Promise<void> => {
    // The store's query builder and statements, read-only.
    for (let i = 0; i < 10; i++) {
      await store.getTask(newUuid());
      await store.listGenerations(newUuid());
    }
    if (!app) return;
    for (let i = 0; i < 20; i++) {
      await app.inject({ method: 'POST', url: '/v1', payload: [{ taskType: 'ping', ping: true }] });
      parseTask({ taskType: 'imageInference', taskUUID: newUuid(), model: 'klingai:kling-image@o3', positivePrompt: 'a lighthouse at dusk', width: 2496, height: 1664 });
    }
  };
  const warming = Promise.all([studio.warm(budget, (pixels) => large(pixels)), encodes(), requests()]).then(
    () => logger.info({ ms: Date.now() - started }, 'engines warmed up'),
    (error: unknown) => logger.warn({ err: error }, 'warm-up failed; workers start on first use'),
  );
  await Promise.race([warming, new Promise<void>((resolve) => budget.addEventListener('abort', () => resolve(), { once: true }))]);
}

/** The one place that wires concrete classes from the config; `config.role` picks what runs here. */
export async function startKiln(config: Config, options: ComposeOptions = {}): Promise<Kiln> {
  const clock = options.clock ?? systemClock;
  const role = config.role;
  const servesApi = role !== 'worker';
  const runsTasks = role !== 'api';
  const logger = pino({ level: config.logLevel, base: { service: 'kiln', role } }, options.logStream ?? pino.destination(1));
  const allocator = untunedAllocatorWarning();
  if (allocator) logger.warn(allocator);
  // Before any image work, the warm-up's included.
  setImageThreads(config.imageThreads);
  // Engines connect and start their workers lazily, so routing errors stop the start before
  // anything is opened (API processes build the routes too, for X-Kiln-Engine).
  const studio = createStudioEngine({ threads: config.studioThreads });
  const available = new Map<string, ImageEngine>([['studio', studio]]);
  // Every outbound request goes through this guarded client (addresses, ports, timeouts, size
  // caps); its connection pools are made on first use, so making it early opens nothing.
  const http = createSafeFetch({ allowPrivate: config.allowPrivateUrls, allowedPorts: config.outboundPorts, userAgent: 'Kiln' });
  if (config.runware) available.set('runware', createRunwareEngine({ ...config.runware, logger, download: upstreamDownloader(http) }));
  const routes = routeModels(config, available);
  for (const [model, engine] of options.engines ?? []) {
    routes.set(model, engine);
    available.set(`${engine.name}:${model}`, engine);
  }
  const engines = engineRegistry(routes, available);
  const services = await openServices(config, logger);
  const { store, objects, queue, admission, events } = services;
  // Leases (deliveries, sweeper) name their holder; a lone `serve` keeps one name across
  // restarts, so it takes its own leases back at once.
  const owner = config.redisUrl ? `${role}@${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}` : 'serve';
  const apiKeys = new ApiKeys(store, clock, await openKeyHasher(config, logger));
  const createdKey = await ensureInitialKey(config, apiKeys, logger);
  let baseUrl = config.publicUrl ?? `http://localhost:${config.port}`;
  const inputs = createImageInputs({ store, objects, clock, config, http });
  const metrics = createMetrics();
  // Loaded lazily on the first check, so servers that never check pay nothing.
  const classifier = createSafetyClassifier({ threshold: config.safety.threshold, logger });
  const safety = createSafetyChecker(classifier, { ...config.safety, metrics, logger });
  const delivery = new DeliveryService({
    store,
    objects,
    clock,
    logger,
    metrics,
    http,
    webhook: config.webhookRetry,
    upload: config.uploadRetry,
    webhookSecrets: (apiKeyId) => apiKeys.webhookSecrets(apiKeyId),
    owner,
    graceMs: config.redisUrl ? 2_000 : 0,
  });
  // Per-key fairness, limits, budgets and ledger (docs/tenancy.md): counters in the task store,
  // the rate in Redis when scaled out so every API process draws from the same bucket.
  const rateLimiter = config.redisUrl
    ? new (await import('./queue/redis-rate-limiter.ts')).RedisRateLimiter({ redisUrl: config.redisUrl, prefix: config.redisPrefix, logger })
    : new MemoryRateLimiter();
  const tenancy = new Tenancy({ store: store.tenancy(), rateLimiter, defaults: config.keyDefaults, clock, logger, metrics });
  const encoding: EncodeOptions = { optimizeJpegCoding: config.jpegOptimizeCoding };
  metrics.watchKeys?.(() => store.tenancy().loadByKey());
  const service = new TaskService({
    tenancy,
    store,
    objects,
    queue,
    admission,
    engines,
    inputs,
    safety,
    delivery,
    events,
    metrics,
    checkDeliveryTarget: async (url) =>
      portProblem(url, config.allowPrivateUrls, config.outboundPorts) ?? checkDeliveryTarget(url, config.allowPrivateUrls),
    clock,
    logger,
    imageUrl: (objectKey, base) => `${config.publicUrl ?? base ?? baseUrl}/image/${objectKey}`,
    retentionMs: config.retentionMs,
    uploadRetentionMs: config.uploadRetentionMs,
    idempotentResubmit: config.idempotentResubmit,
    queueCapacity: config.queueMax,
    abandonedRunMs: config.queueLockMs,
    encoding,
  });
  const shutdown = new AbortController();
  // Every waiting sync request listens to it; their number is bounded by the queue, not by 10.
  setMaxListeners(0, shutdown.signal);
  const health = async (): Promise<Record<string, unknown>> => ({ role });
  const readiness = () => checkReadiness({ store, queue, events, maxQueuedImages: config.readyMaxQueuedImages });
  const api = servesApi
    ? await buildServer({
        service,
        apiKeys,
        logger,
        metrics,
        maxBodyBytes: config.maxBodyBytes,
        wsIdleMs: config.wsIdleMs,
        wsHeartbeatMs: config.wsHeartbeatMs,
        wsResumeMs: config.wsResumeMs,
        syncTimeoutMs: config.syncTimeoutMs,
        defaultEngine: engines.forModel(KLING_O3.id).name,
        shutdown: shutdown.signal,
        sessionDirectory: services.sessions,
        health,
        readiness,
        limits: config.limits,
        authThrottle: services.authThrottle,
        metricsToken: config.metricsToken,
        trustProxy: config.trustProxy,
        corsOrigins: config.corsOrigins,
      })
    : undefined;
  const app = api?.app ?? (await buildOpsServer({ metrics, health, readiness, logger, metricsToken: config.metricsToken, limits: config.limits }));
  // Scrape-time gauges (docs/operations.md): cluster-wide counts from the store and the queue.
  metrics.watch({ store, queue, webSockets: () => api?.app.websocketServer.clients.size });
  if (runsTasks && config.warmUp) await warmUp(studio, logger, api?.app, store, encoding);
  // The start's garbage (module loading, the warm-up) collected before the first request rather
  // than during it (src/shared/collect-garbage.ts); KILN_WARMUP=false (tests) skips it as well.
  if (config.warmUp) logger.info({ ms: Math.round(collectGarbage()) }, 'start-up garbage collected');
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  baseUrl = config.publicUrl ?? `http://localhost:${port}`;
  const sweeper = new Sweeper({
    store,
    objects,
    clock,
    logger,
    intervalMs: config.sweepIntervalMs,
    retentionMs: config.retentionMs,
    owner,
    // Queued tasks past their deadline whose accepting process is gone (its timer with it).
    first: async () => {
      const overdue = await service.endOverdue();
      if (overdue > 0) logger.info({ tasks: overdue }, 'ended queued tasks past their deadline');
    },
    reconcile: async () => {
      // Tasks stored by an API process that died before enqueueing them, and reservations
      // whose task ended without freeing them, are repaired here (a minute's grace).
      const before = clock.now() - 60_000;
      const requeued = await service.requeueUnfinished(before);
      const freed = await service.reconcileAdmission(before);
      if (freed > 0) logger.info({ freed, requeued }, 'reconciled admission reservations');
    },
  });
  if (runsTasks) {
    sweeper.start();
    await delivery.start();
    await service.start(config.queueConcurrency);
  }
  const listenHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const listening = `http://${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`;
  const routing = Object.fromEntries([...MODELS.keys()].map((id) => [id, engines.forModel(id).name]));
  // `url` is what clients are told (KILN_PUBLIC_URL when set); `listening` is this process.
  logger.info({ url: baseUrl, listening, engines: routing, role }, 'kiln is listening');

  let closing: Promise<void> | undefined;
  return {
    app,
    service,
    apiKeys,
    url: listening,
    createdKey,
    sweep: () => sweeper.sweep(),
    close(drainMs = 10_000) {
      closing ??= (async () => {
        const started = Date.now();
        const phase = (name: string): void => logger.info({ ms: Date.now() - started }, `shutdown: ${name}`);
        if (runsTasks) await sweeper.stop();
        // Stop accepting first, then let running tasks finish (bounded) or hand them back to the
        // queue, then tell whoever still waits, then release resources.
        const closed = app.close();
        await queue.close({ drainMs: runsTasks ? drainMs : 0 });
        phase('tasks drained or handed back');
        shutdown.abort();
        api?.closeSockets();
        api?.sessions.close();
        await closed;
        phase('transports closed');
        await delivery.close();
        await inputs.close();
        await http.close();
        for (const engine of engines.all()) await engine.close();
        await classifier.close();
        await rateLimiter.close();
        await services.close();
        phase('stores closed');
        logger.flush?.();
      })();
      return closing;
    },
  };
}
