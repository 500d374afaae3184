import { Webhook } from 'standardwebhooks';
import { observeDeliveryAttempt, type DeliveryAttemptOutcome, type Metrics } from '../metrics/metrics.ts';
import { FetchError, isFetchError } from '../net/fetch-error.ts';
import type { SafeFetch } from '../net/safe-fetch.ts';
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { uploadFailed } from '../errors/index.ts';
import { webhookForError } from './delivery-records.ts';
import type { DeliveryRecord, TaskStore } from '../store/task-store.ts';
import { backoffDelay, type RetryPolicy } from './retry-policy.ts';

const CONTENT_TYPE: Readonly<Record<string, string>> = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };

export interface DeliveryServiceOptions {
  readonly store: TaskStore;
  readonly objects: ObjectStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Outbound HTTP with address checks (private targets allowed only when configured). */
  readonly http: SafeFetch;
  readonly webhook: RetryPolicy;
  readonly upload: RetryPolicy;
  /**
   * The Standard Webhooks secrets that sign an API key's webhooks: the current one first, and
   * during a rotation's overlap the previous one too (receivers accept any listed signature).
   */
  webhookSecrets(apiKeyId: string): Promise<readonly string[]>;
  /**
   * Who holds delivery leases: unique per process in a cluster; a fixed name for `kiln serve`,
   * so a restarted single process takes its own leases back at once.
   */
  readonly owner: string;
  /** How often due deliveries that no process is running are looked for (default 1 s). */
  readonly pollIntervalMs?: number;
  /**
   * How long a due delivery is left to the process that created or last tried it before a
   * poller takes it (default 2 s; 0 for a single process).
   */
  readonly graceMs?: number;
}

/** A lease covers one attempt with room to record its outcome. */
const LEASE_MARGIN_MS = 5_000;

/**
 * Runs webhook POSTs and upload PUTs from their durable records: bounded attempts with
 * exponential backoff and jitter, one delivery id across all attempts, and pending work
 * resumed after a restart or taken over from a process that died. Every attempt is made under
 * a lease in the store (`claimDelivery`), so with several workers each attempt is sent by one
 * process only.
 */
export class DeliveryService {
  private readonly controller = new AbortController();
  private readonly inFlight = new Set<Promise<DeliveryRecord>>();
  private readonly running = new Map<string, Promise<DeliveryRecord>>();
  private poller: NodeJS.Timeout | undefined;
  private polling: Promise<number> | undefined;

  constructor(private readonly options: DeliveryServiceOptions) {}

  /** Resumes deliveries left pending (by a previous run or a dead process), then keeps looking for them. */
  async start(): Promise<number> {
    const resumed = await this.poll();
    if (resumed > 0) this.options.logger.info({ deliveries: resumed }, 'resuming pending deliveries');
    this.poller = setInterval(() => void this.poll(), this.options.pollIntervalMs ?? 1_000);
    this.poller.unref();
    return resumed;
  }

  /** Starts every due delivery that no live process holds; returns how many it started. */
  private poll(): Promise<number> {
    this.polling ??= (async () => {
      try {
        const now = this.options.clock.now() - (this.options.graceMs ?? 2_000);
        const due = await this.options.store.listDueDeliveries(now, 100);
        const fresh = due.filter((record) => !this.running.has(record.id));
        for (const record of fresh) void this.run(record);
        return fresh.length;
      } catch (error) {
        if (!this.controller.signal.aborted) this.options.logger.warn({ err: error }, 'looking for pending deliveries failed');
        return 0;
      } finally {
        this.polling = undefined;
      }
    })();
    return this.polling;
  }

  /**
   * Starts the given (already stored) deliveries. Webhooks continue in the background; the
   * returned promise waits for the uploads and resolves with those that failed for good
   * (with their `lastError`).
   */
  async dispatch(records: readonly DeliveryRecord[]): Promise<DeliveryRecord[]> {
    const runs = records.map((record) => this.run(record));
    const failed: DeliveryRecord[] = [];
    for (const [i, record] of records.entries()) {
      if (record.kind !== 'upload') continue;
      const outcome = await runs[i]!;
      if (outcome.status === 'failed') failed.push(outcome);
    }
    return failed;
  }

  /** Stops retrying; what is still pending stays in the store for the next start. */
  async close(): Promise<void> {
    clearInterval(this.poller);
    this.controller.abort();
    await this.polling;
    await Promise.allSettled([...this.inFlight]);
  }

  private run(record: DeliveryRecord): Promise<DeliveryRecord> {
    const existing = this.running.get(record.id);
    if (existing) return existing;
    // A store error (a lease, an outcome that cannot be written) stops this run, never the
    // process: the row keeps its lease and is taken up again by a poll once the lease runs out.
    const promise = this.loop(record)
      .catch((error: unknown) => {
        if (!this.controller.signal.aborted) {
          this.options.logger.error({ err: error, taskUUID: record.taskUUID, deliveryId: record.id, kind: record.kind }, 'a delivery stopped on a store error; it is retried once its lease runs out');
        }
        return record;
      })
      .finally(() => {
      this.inFlight.delete(promise);
      this.running.delete(record.id);
    });
    this.inFlight.add(promise);
    this.running.set(record.id, promise);
    return promise;
  }

  /** Attempts a delivery until it succeeds, fails for good or the service closes; returns its last state. */
  private async loop(record: DeliveryRecord): Promise<DeliveryRecord> {
    const { store, clock, logger } = this.options;
    const policy = record.kind === 'webhook' ? this.options.webhook : this.options.upload;
    const signal = this.controller.signal;
    let state: DeliveryRecord = record;
    const log = logger.child({ taskUUID: record.taskUUID, deliveryId: record.id, kind: record.kind });
    while (!signal.aborted) {
      const wait = state.nextAttemptAt - clock.now();
      if (wait > 0 && !(await sleep(wait, signal))) break;
      // Another process may hold the delivery (it took over, or is mid-attempt): then it is theirs.
      const claimed = await this.lease(record, policy);
      if (!claimed) return state;
      state = claimed;
      if (state.nextAttemptAt > clock.now()) continue;
      const attempts = state.attempts + 1;
      const attemptStarted = performance.now();
      const owner = this.options.owner;
      let status: number;
      try {
        status = await this.attempt(record, policy, signal);
      } catch (error) {
        if (signal.aborted || error instanceof LeaseLost) break;
        const message = error instanceof Error ? error.message : String(error);
        const final = isFinal(error) || attempts >= policy.maxAttempts;
        this.count(record, final ? 'gave_up' : 'retry', attemptStarted);
        await this.log(record, attemptStarted, error);
        state = {
          ...state,
          status: final ? 'failed' : 'pending',
          attempts,
          nextAttemptAt: clock.now() + backoffDelay(policy, attempts),
          lastError: message,
        };
        // An attempt that outlived its lease records nothing: the process that took the delivery
        // over decides what happens next.
        if (!final) {
          if (!(await store.updateDelivery(record.id, state, [], owner))) return state;
          log.info({ attempts, error: message }, 'delivery attempt failed; retrying');
          continue;
        }
        // A failed upload is told to the task's webhook, recorded with the failure itself so a
        // crash cannot lose the notice.
        const notice = this.failureNotice(state);
        if (!(await store.updateDelivery(record.id, state, notice ? [notice] : [], owner))) return state;
        if (notice) void this.run(notice);
        log.warn({ attempts, error: message }, 'delivery failed for good');
        return state;
      }
      // Delivered. Recording it is outside the attempt's try: a store error here must not count
      // as a failed send and send again at once (the row keeps its lease; if the write never
      // lands, the delivery is sent again only after the lease runs out: at least once).
      this.count(record, 'success', attemptStarted);
      await this.log(record, attemptStarted, status);
      state = { ...state, status: 'done', attempts, lastError: null };
      if (!(await store.updateDelivery(record.id, state, [], owner))) log.warn({ attempts }, 'delivered after the lease ran out; another process holds the delivery now');
      else log.debug({ attempts }, 'delivered');
      return state;
    }
    return state;
  }

  /** Writes the attempt to the delivery log; a log that cannot be written never stops a delivery. */
  private async log(record: DeliveryRecord, attemptStarted: number, outcome: number | unknown): Promise<void> {
    // A number is the status of a delivered attempt; anything else is what made it fail.
    const failed = typeof outcome !== 'number';
    const status = failed ? (isFetchError(outcome) ? outcome.status : undefined) : outcome;
    await this.options.store
      .recordDeliveryAttempt({
        deliveryId: record.id,
        at: this.options.clock.now(),
        httpStatus: status ?? null,
        error: !failed ? null : outcome instanceof Error ? outcome.message : String(outcome),
        latencyMs: Math.round(performance.now() - attemptStarted),
      })
      .catch((failure: unknown) => this.options.logger.warn({ err: failure, deliveryId: record.id }, 'delivery attempt not logged'));
  }

  private failureNotice(upload: DeliveryRecord): DeliveryRecord | undefined {
    if (upload.kind !== 'upload' || !upload.notifyUrl) return undefined;
    const error = uploadFailed(upload.taskUUID, upload.imageUUID ?? '', upload.lastError);
    return webhookForError(
      { taskUUID: upload.taskUUID, apiKeyId: upload.apiKeyId, now: this.options.clock.now() },
      upload.notifyUrl,
      error.toJSON(),
      upload.imageUUID,
    );
  }

  private count(record: DeliveryRecord, outcome: DeliveryAttemptOutcome, attemptStarted: number): void {
    observeDeliveryAttempt(this.options.metrics, record, outcome, performance.now() - attemptStarted, this.options.clock.now());
  }

  /** Leases the delivery to this process for one attempt (or renews the lease); undefined when another process holds it or it is settled. */
  private lease(record: DeliveryRecord, policy: RetryPolicy): Promise<DeliveryRecord | undefined> {
    const now = this.options.clock.now();
    return this.options.store.claimDelivery(record.id, this.options.owner, now + policy.timeoutMs + LEASE_MARGIN_MS, now);
  }

  /**
   * Extends the lease to cover the request about to go out (what came before it, a secret's
   * lookup or the image's read from storage, may have taken part of it); throws `LeaseLost` when
   * another process took the delivery over meanwhile, so nothing is sent twice.
   */
  private async renewLease(record: DeliveryRecord, policy: RetryPolicy): Promise<void> {
    if (!(await this.lease(record, policy))) throw new LeaseLost();
  }

  /** One attempt; answers the receiver's (2xx) status, or throws what went wrong. */
  private async attempt(record: DeliveryRecord, policy: RetryPolicy, signal: AbortSignal): Promise<number> {
    const common = {
      signal,
      totalTimeoutMs: policy.timeoutMs,
      connectTimeoutMs: Math.min(policy.timeoutMs, 5_000),
      // A receiver's answer is never read: a slow or huge body cannot hold a delivery.
      maxBytes: 64 * 1024,
      discardBody: true,
      maxRedirects: 0,
    } as const;
    if (record.kind === 'webhook') {
      const body = record.body ?? '{}';
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-kiln-delivery': record.id };
      const secrets = await this.options.webhookSecrets(record.apiKeyId);
      const timestamp = new Date(this.options.clock.now());
      headers['webhook-id'] = record.id;
      headers['webhook-timestamp'] = String(Math.floor(timestamp.getTime() / 1000));
      // Standard Webhooks: several signatures are space-separated in one header.
      if (secrets.length > 0) headers['webhook-signature'] = secrets.map((secret) => new Webhook(secret).sign(record.id, timestamp, body)).join(' ');
      await this.renewLease(record, policy);
      return (await this.options.http.request(record.url, { ...common, method: 'POST', headers, body })).status;
    }
    const bytes = record.objectKey ? await this.options.objects.get(record.objectKey) : undefined;
    if (!bytes) throw new FetchError('badUrl', 'The image to upload no longer exists.');
    const extension = record.objectKey?.split('.').pop() ?? 'jpg';
    await this.renewLease(record, policy);
    const answer = await this.options.http.request(record.url, {
      ...common,
      method: 'PUT',
      headers: { 'content-type': CONTENT_TYPE[extension] ?? 'application/octet-stream', 'x-kiln-delivery': record.id },
      body: bytes,
    });
    return answer.status;
  }
}

/** Another process took a delivery over before this one sent its attempt. */
class LeaseLost extends Error {
  constructor() {
    super('another process took the delivery over');
    this.name = 'LeaseLost';
  }
}

/** 4xx answers other than 408/429, and targets that can never work, are not retried. */
function isFinal(error: unknown): boolean {
  if (!isFetchError(error)) return false;
  if (error.reason === 'badUrl' || error.reason === 'blockedAddress' || error.reason === 'tooManyRedirects') return true;
  if (error.reason === 'httpStatus' && error.status !== undefined) {
    return error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
  }
  return false;
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
