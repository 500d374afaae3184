/**
 * `/ready`: whether this process can do its work now. Each check runs with a short deadline,
 * all of them at once, so the answer never takes much longer than one deadline. Structural
 * types only (`metrics/` imports no other folder); `compose.ts` hands the ports in.
 */

/** One check's answer, as `/ready` lists it. */
export interface CheckResult {
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly error?: string;
  readonly [detail: string]: unknown;
}

export interface Readiness {
  readonly ready: boolean;
  /** The checks that failed, by name (`store`, `queue`, `events`, `queueDepth`). */
  readonly failing: readonly string[];
  readonly checks: Readonly<Record<string, CheckResult>>;
}

export interface ReadinessSources {
  /** Answers when the database does (`TaskStore.ping`); `operatorCounts` feeds the depth check. */
  readonly store: { ping(): Promise<void>; operatorCounts(): Promise<{ queuedImages: number }> };
  /** `counts()` is the queue's cheapest round trip (BullMQ: one Redis call under its own deadline). */
  readonly queue: { counts(): Promise<{ waiting: number; running: number }> };
  readonly events: { ping(): Promise<void> };
  /** Queued images (cluster-wide) at or past which the process is not ready; `undefined`: no limit. */
  readonly maxQueuedImages: number | undefined;
  /** Deadline of each check. Default 2000 ms. */
  readonly timeoutMs?: number;
}

export const READY_CHECK_TIMEOUT_MS = 2_000;

class CheckTimeout extends Error {}

async function timed(run: () => Promise<Record<string, unknown> | void>, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const details = await Promise.race([
      run(),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new CheckTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { ok: true, latencyMs: Math.round(performance.now() - started), ...(details ?? {}) };
  } catch (error) {
    // Messages of the drivers name the failure (connection refused, database not accepting
    // connections); they carry no secrets (URLs are masked where the adapters build them).
    const message = error instanceof Error ? error.message || error.name : String(error);
    return { ok: false, latencyMs: Math.round(performance.now() - started), error: message.slice(0, 300) };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check at once; `ready` only when all pass. */
export async function checkReadiness(sources: ReadinessSources): Promise<Readiness> {
  const timeoutMs = sources.timeoutMs ?? READY_CHECK_TIMEOUT_MS;
  const runs: Record<string, Promise<CheckResult>> = {
    store: timed(() => sources.store.ping(), timeoutMs),
    queue: timed(async () => ({ ...(await sources.queue.counts()) }), timeoutMs),
    events: timed(() => sources.events.ping(), timeoutMs),
  };
  const max = sources.maxQueuedImages;
  if (max !== undefined) {
    runs.queueDepth = timed(async () => {
      const { queuedImages } = await sources.store.operatorCounts();
      if (queuedImages >= max) throw new Error(`${queuedImages} images queued (limit ${max}, KILN_READY_MAX_QUEUED_IMAGES)`);
      return { queuedImages, limit: max };
    }, timeoutMs);
  }
  const names = Object.keys(runs);
  const results = await Promise.all(Object.values(runs));
  const checks = Object.fromEntries(names.map((name, i) => [name, results[i]!]));
  const failing = names.filter((name) => !checks[name]!.ok);
  return { ready: failing.length === 0, failing, checks };
}
