/**
 * Fair sharing and money per API key (docs/tenancy.md): the rate limit, the image limits and
 * the budget checked before a task is accepted, the hold that reserves its images and price,
 * and the per-image settlement (charge on success, refund on failure or cancel, release at the
 * end). Counters live in the `TenancyStore` (the task store's database) and, for the rate, in a
 * `RateLimiter` (Redis when scaled out), so they hold across every API and worker process.
 */
import { ApiError, conflictTaskUUID, insufficientCredits, keyQueueFull, rateLimitExceeded } from '../errors/index.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { MODELS } from '../models/model-registry.ts';
import { imageCount, type InferenceTask } from '../protocol/task-types.ts';
import type { RateLimiter } from '../queue/rate-limiter.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { fromMicros, periodStart, toMicros, type KeyAccount, type LedgerEntry, type TenancyStore, type UsageQuery } from '../store/tenancy-store.ts';

/** Limits of keys that have none of their own (configuration; `null`: unlimited). */
export interface TenancyDefaults {
  readonly maxConcurrentImages: number | null;
  readonly maxQueuedImages: number | null;
  readonly rate: number | null;
}

export interface TenancyDeps {
  readonly store: TenancyStore;
  readonly rateLimiter: RateLimiter;
  readonly defaults: TenancyDefaults;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}

/** What `Tenancy.lookup` reads for `admit`. */
export interface AdmitLookup {
  readonly account: KeyAccount | undefined;
  readonly charged: boolean;
}

/** What a key may learn of its own usage (`GET /v1/usage`). */
export interface UsageReport {
  /** Every row in the range, summed by the database, whatever the row limit. */
  readonly totals: { readonly images: number; readonly cost: number };
  readonly rows: readonly Record<string, unknown>[];
  /** More rows are in the range than were listed: ask for a narrower range (`since`/`until`). */
  readonly truncated?: boolean;
}

/** Conflicts of a taskUUID charged before (its task since purged): unlike a live twin's, no task holds anything under it. */
const reused = new WeakSet<ApiError>();

function reusedTaskUUID(taskUUID: string, taskType: string): ApiError {
  const error = conflictTaskUUID(taskUUID, taskType);
  reused.add(error);
  return error;
}

/** Whether `admit` refused the task because its taskUUID was charged before (not because another live task holds it). */
export function isReusedTaskUUID(error: unknown): boolean {
  return error instanceof ApiError && reused.has(error);
}

/** Seconds a client is told to wait when its key has too many images in flight. */
const QUEUE_RETRY_AFTER_S = 1;
const WEIGHT_CACHE_MS = 5_000;

export class Tenancy {
  private readonly weights = new Map<string, { weight: number; at: number }>();

  constructor(private readonly deps: TenancyDeps) {}

  /** Price of one image of the task in micro-dollars: the model's price for its size (the default size when it has none yet). */
  unitMicros(task: InferenceTask): number {
    const model = MODELS.get(task.model);
    if (!model) return 0;
    const size = task.width !== undefined && task.height !== undefined ? { width: task.width, height: task.height } : model.defaultSize;
    return toMicros(model.price(size.width, size.height));
  }

  /**
   * The reads `admit` starts from: the key's account and whether the taskUUID was charged before
   * (asked together; a key without limits needs the answer, and the hold of a limited key checks
   * it again itself). They change nothing, so a caller may start them beside its own checks and
   * hand the promise to `admit`.
   */
  lookup(task: InferenceTask, apiKeyId: string): Promise<AdmitLookup> {
    return Promise.all([this.deps.store.account(apiKeyId), this.deps.store.wasCharged(task.taskUUID.toLowerCase())]).then(([account, charged]) => ({ account, charged }));
  }

  /**
   * Checks the key's rate and takes one token, then holds the task's images and price. Throws
   * `rateLimitExceeded`, `queueFull` (the key's image limits) or `insufficientCredits`; nothing
   * is held then. Answers the key's fair-queueing weight. `lookup`: `lookup`'s reads, when the
   * caller started them already. `held`: the task holds its images and price (its record says
   * so); `heldHere`: this call took that hold (a twin submitted at the same moment may have), so
   * only then may a failing submission give it back.
   */
  async admit(task: InferenceTask, apiKeyId: string, lookup: Promise<AdmitLookup> = this.lookup(task, apiKeyId)): Promise<{ weight: number; held: boolean; heldHere: boolean }> {
    const { account, charged } = await lookup;
    const rate = account?.rate ?? this.deps.defaults.rate;
    if (rate !== null && rate > 0) {
      const waitMs = await this.deps.rateLimiter.take(apiKeyId, rate, Math.max(1, rate));
      if (waitMs > 0) throw rateLimitExceeded(task.taskUUID, task.taskType, rate, Math.max(1, Math.ceil(waitMs / 1000)));
    }
    // A key without a budget or image limits holds nothing (what a hold is for is checking them):
    // its task is only refused when its taskUUID was charged before.
    const limited =
      account !== undefined &&
      (account.budgetMicros !== null ||
        (account.maxConcurrentImages ?? this.deps.defaults.maxConcurrentImages) !== null ||
        (account.maxQueuedImages ?? this.deps.defaults.maxQueuedImages) !== null);
    if (!limited) {
      if (charged) throw reusedTaskUUID(task.taskUUID, task.taskType);
      const weight = account?.weight ?? 1;
      this.weights.set(apiKeyId, { weight, at: performance.now() });
      return { weight, held: false, heldHere: false };
    }
    const images = imageCount(task);
    const unit = this.unitMicros(task);
    const outcome = await this.deps.store.hold({
      taskUUID: task.taskUUID.toLowerCase(),
      apiKeyId,
      images,
      unitMicros: unit,
      now: this.deps.clock.now(),
      defaults: { maxConcurrentImages: this.deps.defaults.maxConcurrentImages, maxQueuedImages: this.deps.defaults.maxQueuedImages },
    });
    if (!outcome.ok) {
      if (outcome.reason === 'taskUUID') throw conflictTaskUUID(task.taskUUID, task.taskType);
      if (outcome.reason === 'charged') throw reusedTaskUUID(task.taskUUID, task.taskType);
      if (outcome.reason === 'budget') {
        throw insufficientCredits(task.taskUUID, task.taskType, fromMicros(images * unit), fromMicros(outcome.remainingMicros), fromMicros(outcome.budgetMicros));
      }
      if (images > outcome.limit) {
        // Waiting would never help: the task alone is over the key's limit.
        const what = outcome.reason === 'queuedImages' ? 'queued images' : 'images in progress';
        throw new ApiError('invalidNumberResults', `This API key may have at most ${outcome.limit} ${what}; the task asks for ${images}. Ask for fewer images per task.`, {
          parameter: 'numberResults',
          taskUUID: task.taskUUID,
          taskType: task.taskType,
          max: outcome.limit,
          retryable: false,
        });
      }
      throw keyQueueFull(task.taskUUID, task.taskType, outcome.reason, outcome.limit, QUEUE_RETRY_AFTER_S);
    }
    const weight = outcome.account?.weight ?? 1;
    this.weights.set(apiKeyId, { weight, at: performance.now() });
    return { weight, held: true, heldHere: outcome.made };
  }

  /** What a task would cost, and what the key's budget has left (when it has one), changing nothing (`dryRun`). */
  async estimate(task: InferenceTask, apiKeyId: string): Promise<{ cost: number; budgetRemaining?: number }> {
    const cost = fromMicros(imageCount(task) * this.unitMicros(task));
    const account = await this.deps.store.account(apiKeyId);
    const remaining = account && remainingMicros(account, this.deps.clock.now());
    return { cost, ...(remaining === undefined ? {} : { budgetRemaining: fromMicros(remaining) }) };
  }

  /** The fair-queueing weight of a key (cached a few seconds). */
  async weightOf(apiKeyId: string): Promise<number> {
    const cached = this.weights.get(apiKeyId);
    if (cached && performance.now() - cached.at < WEIGHT_CACHE_MS) return cached.weight;
    const weight = (await this.deps.store.account(apiKeyId))?.weight ?? 1;
    if (this.weights.size > 10_000) this.weights.clear();
    this.weights.set(apiKeyId, { weight, at: performance.now() });
    return weight;
  }

  /** The task's run began: its images count as running. */
  async started(taskUUID: string): Promise<void> {
    await this.deps.store.markStarted(taskUUID.toLowerCase());
  }

  /** The task handed its slot back between images: what it has left waits, and counts as queued. */
  async requeued(taskUUID: string): Promise<void> {
    await this.deps.store.markQueued(taskUUID.toLowerCase());
  }

  /** Charges one finished image (idempotent per task and image index); `held`: the task was admitted with a hold (`keyHold`). */
  async charge(entry: Omit<LedgerEntry, 'taskUUID'> & { taskUUID: string }, held: boolean): Promise<void> {
    const charged = await this.deps.store.charge({ ...entry, taskUUID: entry.taskUUID.toLowerCase() }, { held });
    if (charged) this.deps.metrics?.keySpend?.inc({ key: entry.apiKeyId }, fromMicros(entry.priceMicros));
  }

  /** Gives back the hold of images that failed or were cancelled. */
  async refund(taskUUID: string, images: number): Promise<void> {
    await this.deps.store.refund(taskUUID.toLowerCase(), images);
  }

  /** Drops a task's hold (ended, or refused after holding); `unlessStored`: see `TenancyStore.release`. */
  async release(taskUUID: string, options: { unlessStored?: boolean } = {}): Promise<void> {
    await this.deps.store.release(taskUUID.toLowerCase(), options);
  }

  /** Whether the task holds images and money now. */
  isHeld(taskUUID: string): Promise<boolean> {
    return this.deps.store.isHeld(taskUUID.toLowerCase());
  }

  /** taskUUIDs holding images and money since before `before` (ms since epoch), for reconciliation. */
  holdsOlderThan(before: number): Promise<string[]> {
    return this.deps.store.holdsOlderThan(before);
  }

  /** The ledger of one key (or all, for operators) with totals in USD, summed as integers. */
  async usage(query: UsageQuery): Promise<UsageReport> {
    const [entries, totals] = await Promise.all([this.deps.store.usage(query), this.deps.store.usageTotals(query)]);
    return {
      totals: { images: totals.images, cost: fromMicros(totals.micros) },
      rows: entries.map(usageRow),
      ...(totals.images > entries.length ? { truncated: true } : {}),
    };
  }
}

/** What is left of a key's budget now, in micro-dollars; undefined without a budget. */
export function remainingMicros(account: KeyAccount, now: number): number | undefined {
  if (account.budgetMicros === null) return undefined;
  const spent = account.periodStart === periodStart(account.budgetPeriod, now) ? account.spentMicros : 0;
  return Math.max(0, account.budgetMicros - spent - account.reservedMicros);
}

/** A ledger row as the API and the CLI show it. */
export function usageRow(entry: LedgerEntry): Record<string, unknown> {
  return {
    time: new Date(entry.at).toISOString(),
    apiKeyId: entry.apiKeyId,
    taskUUID: entry.taskUUID,
    imageUUID: entry.imageUUID,
    model: entry.model,
    engine: entry.engine,
    width: entry.width,
    height: entry.height,
    cost: fromMicros(entry.priceMicros),
    ...(entry.upstreamMicros === null ? {} : { upstreamCost: fromMicros(entry.upstreamMicros) }),
  };
}
