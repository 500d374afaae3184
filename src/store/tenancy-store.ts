/**
 * The `TenancyStore` port: what Kiln keeps per API key to share capacity and money fairly
 * (docs/tenancy.md). Every counter lives in the task store's database (SQLite for one process,
 * PostgreSQL when scaled out) and changes only inside a transaction that first writes the key's
 * row, so concurrent submissions on any number of API processes are serialised per key: a
 * budget is never overspent and an image limit never overshot.
 *
 * Money is held in integer micro-dollars (1 USD = 1 000 000), never in floats, so the ledger's
 * totals equal the sum of the `cost` values the clients received, exactly.
 */

export type BudgetPeriod = 'day' | 'month' | 'total';

/** Per-key settings; `null` means "the configured default" (limits) or "none" (budget). */
export interface KeyLimits {
  /** Images accepted and not yet finished (queued or running) at once. */
  readonly maxConcurrentImages: number | null;
  /** Images accepted and not yet started at once. */
  readonly maxQueuedImages: number | null;
  /** Tasks per second, with a burst of the same number. */
  readonly rate: number | null;
  /** Share of the workers under contention (fair queueing weight). Default 1. */
  readonly weight: number | null;
  /** Budget per period in micro-dollars. */
  readonly budgetMicros: number | null;
  readonly budgetPeriod: BudgetPeriod | null;
}

/** A key's settings with its money counters. */
export interface KeyAccount extends KeyLimits {
  readonly apiKeyId: string;
  /** Charged in the period starting at `periodStart`. */
  readonly spentMicros: number;
  /** Held for tasks accepted and not yet settled. */
  readonly reservedMicros: number;
  readonly periodStart: number;
  /** Lifetime charged images and micro-dollars. */
  readonly usageImages: number;
  readonly usageMicros: number;
}

export interface HoldRequest {
  readonly taskUUID: string;
  readonly apiKeyId: string;
  readonly images: number;
  /** Price of one image, held `images` times. */
  readonly unitMicros: number;
  readonly now: number;
  /** Limits that apply when the key has none of its own (configuration). */
  readonly defaults: { readonly maxConcurrentImages: number | null; readonly maxQueuedImages: number | null };
}

export type HoldOutcome =
  /** `made`: this call took the hold (false when the same task, submitted twice at once, already held it, or nothing needed holding). */
  | { readonly ok: true; readonly account: KeyAccount | undefined; readonly made: boolean }
  | { readonly ok: false; readonly reason: 'concurrentImages' | 'queuedImages'; readonly limit: number }
  | { readonly ok: false; readonly reason: 'budget'; readonly remainingMicros: number; readonly budgetMicros: number }
  /** The taskUUID is held by another task (another key, or other images or price). */
  | { readonly ok: false; readonly reason: 'taskUUID' }
  /** The taskUUID's images were charged before (its task since purged): no live task holds it. */
  | { readonly ok: false; readonly reason: 'charged' };

/** One charged image. */
export interface LedgerEntry {
  readonly apiKeyId: string;
  readonly taskUUID: string;
  readonly imageIndex: number;
  readonly imageUUID: string;
  readonly model: string;
  readonly engine: string;
  readonly width: number;
  readonly height: number;
  /** What the client was told (`cost`), in micro-dollars. */
  readonly priceMicros: number;
  /** What the upstream engine reported, when it did. */
  readonly upstreamMicros: number | null;
  readonly at: number;
}

export interface UsageQuery {
  readonly apiKeyId?: string;
  /** ms since epoch, inclusive. */
  readonly since?: number;
  /** ms since epoch, exclusive. */
  readonly until?: number;
  /** At most this many rows (the oldest first); none: every row. */
  readonly limit?: number;
}

/** Images of a key's tasks held now, split by whether their task has started. */
export interface KeyLoad {
  readonly apiKeyId: string;
  readonly queuedImages: number;
  readonly runningImages: number;
}

export interface TenancyStore {
  /** A key's settings and counters (undefined for an unknown key). */
  account(apiKeyId: string): Promise<KeyAccount | undefined>;
  /** Changes a key's settings (`undefined` fields stay); false for an unknown key. */
  setLimits(apiKeyId: string, patch: Partial<KeyLimits>): Promise<boolean>;
  /**
   * Atomically checks the key's image limits and budget and, when the task fits, holds its
   * images and price. Holding a taskUUID that already has a hold answers ok and changes nothing.
   */
  hold(request: HoldRequest): Promise<HoldOutcome>;
  /** The task's run began: its images count as running from now on. */
  markStarted(taskUUID: string): Promise<void>;
  /** The task went back to the queue between images (fair sharing): its images left count as queued again. */
  markQueued(taskUUID: string): Promise<void>;
  /**
   * Charges one image: writes its ledger row, moves its price from held to spent. Idempotent by
   * (taskUUID, imageIndex): false (nothing changed) when that image was already charged.
   * `held: false` says the task holds nothing (it was admitted without a hold), so there is no
   * hold to take the price from; the store may then skip looking for one.
   */
  charge(entry: LedgerEntry, options?: { readonly held?: boolean }): Promise<boolean>;
  /** Gives back the hold of `images` images that failed or were cancelled (at most what is held). */
  refund(taskUUID: string, images: number): Promise<void>;
  /**
   * Drops a task's hold (its task ended or was refused): what is still held goes back. Idempotent.
   * With `unlessStored`, only while no unfinished task of that taskUUID is stored: a submission
   * that took the hold and failed before storing leaves it to a twin that stored the task.
   */
  release(taskUUID: string, options?: { unlessStored?: boolean }): Promise<void>;
  /** Whether the task holds images and money now. */
  isHeld(taskUUID: string): Promise<boolean>;
  /** Holds made before `before` (ms since epoch), for reconciliation. */
  holdsOlderThan(before: number): Promise<string[]>;
  /**
   * Images of unfinished tasks per key, queued and running (keys with none are left out), read
   * from the tasks themselves, so keys without limits (whose tasks hold nothing) count too.
   */
  loadByKey(): Promise<KeyLoad[]>;
  /** Whether images of this taskUUID were ever charged (a taskUUID is never reused then). */
  wasCharged(taskUUID: string): Promise<boolean>;
  /** Ledger rows in time order. */
  usage(query: UsageQuery): Promise<LedgerEntry[]>;
  /** The images and micro-dollars of the rows `usage` would list (all of them, whatever the limit), summed by the database. */
  usageTotals(query: UsageQuery): Promise<{ images: number; micros: number }>;
}

/** USD → integer micro-dollars. */
export const toMicros = (usd: number): number => Math.round(usd * 1_000_000);
/** Integer micro-dollars → USD (exact for every amount with at most 6 decimals). */
export const fromMicros = (micros: number): number => Number((micros / 1_000_000).toFixed(6));

/** Start of the budget period holding `now` (UTC). */
export function periodStart(period: BudgetPeriod | null, now: number): number {
  const date = new Date(now);
  if (period === 'day') return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
  if (period === 'month') return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
  return 0;
}
