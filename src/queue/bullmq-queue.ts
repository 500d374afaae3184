/**
 * The `TaskQueue` port on BullMQ (Redis), for Kiln scaled out: API processes enqueue, worker
 * processes run. Semantics, beyond the port's:
 *
 * - **Attempts.** A handler that rejects, or stops because its signal aborted on shutdown, is a
 *   failed attempt: the job goes back to `delayed` with a capped exponential backoff
 *   (`retryDelayMs` doubled per attempt, at most 30 s, ±20 % jitter) and runs again, up to
 *   `maxAttempts`; then it is dropped (`onGiveUp`, logged). A cancelled job fails for good
 *   (BullMQ `UnrecoverableError`) and is never run again. Finished jobs are removed from Redis
 *   (`removeOnComplete`/`removeOnFail`), so the same id can be enqueued again later.
 * - **Crashes.** A worker holds a lock per job (`lockMs`, renewed every `lockMs/2`). When a
 *   worker dies, its lock expires and the stalled-job check (every `stalledIntervalMs`, run by
 *   every live worker) moves the job back to waiting; another worker runs it. `maxStalledCount`
 *   is `maxAttempts`, so a stall never fails a job for good on its own.
 * - **Lost locks.** If a lock cannot be renewed (Redis unreachable for longer than `lockMs`, or
 *   an event loop blocked that long), BullMQ itself lets the handler run on, while the stalled
 *   check may already have handed the job to another worker, and the first worker's result is
 *   then refused ("Missing lock"). This adapter aborts the handler's signal as soon as BullMQ
 *   reports the failed renewal, so two workers overlap as briefly as possible; the task store's
 *   fenced claims keep the overlap harmless.
 * - **Fair order.** Jobs are BullMQ *prioritized* jobs whose priority is their virtual start tag
 *   (start-time fair queueing across `QueueJob.group`, see `QueueJob`), computed at enqueue by a
 *   Lua script on one Redis hash (`<prefix>:<name>:fair`: the virtual clock `v` and each group's
 *   last finish tag), so every API process draws tags from the same clock. A worker advances `v`
 *   to the tag of each job it starts. BullMQ runs lower priorities first and equal ones FIFO;
 *   retries and stalled jobs keep their priority. The hash is reset whenever the queue is empty;
 *   tags past BullMQ's priority limit (2 097 151 images of backlog) are clamped to it, which
 *   falls back to FIFO order until the queue drains. A job that yields between units (`JobTurn`)
 *   gets its resume tag as its priority and goes back to the prioritized set (`moveToWait`, in
 *   front of jobs of equal priority), then BullMQ's `WaitingError` lets the worker move on;
 *   `shouldYield` reads the lowest waiting priority (one `ZRANGE` per unit).
 * - **Redis down.** Producer calls (enqueue, counts, cancel) fail within `timeoutMs` with
 *   `QueueUnavailableError`. Workers wait: their connection retries forever and processing
 *   resumes, with nothing lost, when Redis is back.
 */
import { Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { deferred, type Deferred } from '../shared/deferred.ts';
import type { Logger } from '../shared/logger.ts';
import { maskUrl } from '../shared/service-url.ts';
import { settleAll } from '../shared/settle-all.ts';
import { closeRedisClient, createRedisClient, DEFAULT_PRODUCER_TIMEOUT_MS, isConnectionError, whenReady, whenReadyInTime, withDeadline } from './redis-client.ts';
import { fairWeight, QueueUnavailableError, type JobHandler, type JobTurn, type QueueCounts, type QueueJob, type TaskQueue } from './task-queue.ts';

export interface BullmqQueueOptions {
  /** `redis://[user:password@]host[:port][/db]` */
  readonly redisUrl: string;
  /** Queue name, shared by every process of one deployment. Default `kiln-tasks`. */
  readonly name?: string;
  /** Redis key prefix. Default `kiln`. */
  readonly prefix?: string;
  /** Job lock duration in ms: how long a dead worker's job waits before another takes it. Default 30 000. */
  readonly lockMs?: number;
  /** Interval of the stalled-job check in ms. Default `lockMs`. */
  readonly stalledIntervalMs?: number;
  /** Runs of one job before it is given up. Default 1000: attempts are cheap, reruns idempotent. */
  readonly maxAttempts?: number;
  /** Backoff before the first rerun of a failed attempt, doubled per attempt up to 30 s. Default 500 ms. */
  readonly retryDelayMs?: number;
  /** Producer calls that get no answer within this many ms fail with `QueueUnavailableError`. Default 2000. */
  readonly timeoutMs?: number;
  /** Called in the worker process that made a job's last allowed attempt, before it is dropped. */
  readonly onGiveUp?: (job: QueueJob, error: unknown) => void;
  readonly logger?: Logger;
}

interface ActiveRun {
  readonly controller: AbortController;
  readonly settled: Deferred<void>;
  cancelled: boolean;
}

const JOB_NAME = 'task';
/** BullMQ's highest priority number. */
const PRIORITY_LIMIT = 2 ** 21 - 1;
// The fair tag of a new job (see the class comment), or 0 when the job exists already (waiting or
// running: enqueueing it again adds nothing, and must not advance its group's tag either).
// KEYS: fair hash, prioritized, wait, delayed, active, the job's hash.
const FAIR_TAG = `
if redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('LLEN', KEYS[3]) == 0 and redis.call('ZCARD', KEYS[4]) == 0 and redis.call('LLEN', KEYS[5]) == 0 then
  redis.call('DEL', KEYS[1])
end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local field = 'f:' .. ARGV[1]
local start = math.max(v, tonumber(redis.call('HGET', KEYS[1], field) or '0'))
redis.call('HSET', KEYS[1], field, tostring(start + tonumber(ARGV[2]) / tonumber(ARGV[3])))
return math.min(tonumber(ARGV[4]), 1 + math.floor(start))`;
const FAIR_STARTED = `
local tag = tonumber(ARGV[1]) - 1
if tag > tonumber(redis.call('HGET', KEYS[1], 'v') or '0') then redis.call('HSET', KEYS[1], 'v', tostring(tag)) end
return 1`;
interface FairCommands {
  kilnFairTag(fair: string, prioritized: string, wait: string, delayed: string, active: string, job: string, group: string, cost: number, weight: number, limit: number): Promise<number>;
  kilnFairStarted(fair: string, priority: number): Promise<number>;
}
const BACKOFF_TYPE = 'kiln-capped-exponential';
const MAX_RETRY_DELAY_MS = 30_000;
const WAITING_STATES: ReadonlySet<string> = new Set(['waiting', 'wait', 'delayed', 'prioritized', 'paused']);
/** How long `close` waits for BullMQ to wind down once handlers have settled, before it cuts the connections. */
const CLOSE_GRACE_MS = 10_000;

export class BullmqQueue implements TaskQueue {
  private readonly name: string;
  private readonly prefix: string;
  private readonly lockMs: number;
  private readonly stalledIntervalMs: number;
  private readonly maxAttempts: number;
  private readonly retryDelayMs: number;
  private readonly timeoutMs: number;
  private readonly where: string;
  private readonly logger: Logger | undefined;
  private readonly producerClient: Redis;
  private readonly queue: Queue;
  private readonly active = new Map<string, ActiveRun>();
  private readonly cancelErrors = new WeakSet<Error>();
  private workerClient: Redis | undefined;
  private readonly duplicates: Redis[] = [];
  private worker: Worker | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: BullmqQueueOptions) {
    this.name = options.name ?? 'kiln-tasks';
    this.prefix = options.prefix ?? 'kiln';
    if (this.name.includes(':') || this.prefix.includes(':')) throw new RangeError('BullMQ queue names and prefixes cannot contain ":"');
    this.lockMs = positive(options.lockMs ?? 30_000, 'lockMs');
    this.stalledIntervalMs = positive(options.stalledIntervalMs ?? this.lockMs, 'stalledIntervalMs');
    this.maxAttempts = Math.floor(positive(options.maxAttempts ?? 1_000, 'maxAttempts'));
    this.retryDelayMs = Math.max(0, options.retryDelayMs ?? 500);
    this.timeoutMs = positive(options.timeoutMs ?? DEFAULT_PRODUCER_TIMEOUT_MS, 'timeoutMs');
    this.where = maskUrl(options.redisUrl);
    this.logger = options.logger?.child({ queue: this.name });
    this.producerClient = createRedisClient(options.redisUrl, {
      role: 'producer',
      connectionName: `kiln-queue-producer`,
      timeoutMs: this.timeoutMs,
      ...(this.logger === undefined ? {} : { logger: this.logger }),
    });
    this.producerClient.defineCommand('kilnFairTag', { numberOfKeys: 6, lua: FAIR_TAG });
    this.producerClient.defineCommand('kilnFairStarted', { numberOfKeys: 1, lua: FAIR_STARTED });
    this.queue = new Queue(this.name, { connection: this.producerClient, prefix: this.prefix });
    // An EventEmitter without an 'error' listener would throw.
    this.queue.on('error', (error) => this.logError(error, 'bullmq queue error'));
  }

  async enqueue(job: QueueJob, after?: Promise<unknown>): Promise<void> {
    // 0: the job is waiting or running already (the sweeper re-enqueues every unfinished task).
    // The tag goes out beside `after`; should `after` fail, the group's clock has moved on by one
    // job that never ran, which only makes its next job wait that much longer.
    const tag = (async () => {
      checkJobId(job.id);
      return this.call('enqueue', (late) => this.fairTag(job, late));
    })();
    const [, priority] = await settleAll([after, tag]);
    if (priority === 0) return;
    // BullMQ waits for the connection itself; waiting here first lets a call past its deadline
    // stay unsent (a job added after its submission was refused finds no task, but costs a run).
    await this.call('enqueue', (late) =>
      whenReadyInTime(this.producerClient, late, () => this.queue.add(
        JOB_NAME,
        { weight: fairWeight(job) } satisfies JobData,
        {
          jobId: job.id,
          priority,
          attempts: this.maxAttempts,
          backoff: { type: BACKOFF_TYPE, delay: this.retryDelayMs },
          removeOnComplete: true,
          removeOnFail: true,
        },
      )),
    );
  }

  process(handler: JobHandler, options: { concurrency: number }): void {
    if (this.closing) throw new QueueUnavailableError('the queue is closed');
    if (this.workerClient) throw new Error('process() was already called');
    const client = createRedisClient(this.options.redisUrl, {
      role: 'worker',
      connectionName: 'kiln-queue-worker',
      ...(this.logger === undefined ? {} : { logger: this.logger }),
    });
    this.workerClient = client;
    // BullMQ duplicates this client for its blocking connection; keep the copies, so that
    // `close` can cut them if BullMQ's own close gets stuck on a dead server.
    const duplicate = client.duplicate.bind(client);
    client.duplicate = ((...args: Parameters<Redis['duplicate']>) => {
      const copy = duplicate(...args);
      this.duplicates.push(copy);
      return copy;
    }) as Redis['duplicate'];
    // The worker starts once Redis answers: a BullMQ worker that never connected cannot be
    // closed cleanly (its close waits for a connection that is not coming).
    const start = (): void => {
      if (!this.closing && !this.worker) this.worker = this.startWorker(handler, client, Math.max(1, Math.floor(options.concurrency)));
    };
    if (client.status === 'ready') start();
    else client.once('ready', start);
  }

  private startWorker(handler: JobHandler, client: Redis, concurrency: number): Worker {
    const worker = new Worker(this.name, (job: Job, token?: string) => this.run(handler, job, token), {
      connection: client,
      prefix: this.prefix,
      concurrency,
      lockDuration: this.lockMs,
      stalledInterval: this.stalledIntervalMs,
      maxStalledCount: this.maxAttempts,
      settings: { backoffStrategy: (attemptsMade: number) => this.backoff(attemptsMade) },
    });
    worker.on('error', (error) => this.logError(error, 'bullmq worker error'));
    worker.on('failed', (failed, error) => this.afterFailure(failed, error));
    worker.on('lockRenewalFailed', (jobIds) => {
      for (const id of jobIds) {
        this.logger?.warn({ taskUUID: id }, 'lost the job lock; aborting this run, another worker may take the job');
        this.active.get(id)?.controller.abort(new DOMException('the job lock was lost', 'AbortError'));
      }
    });
    return worker;
  }

  async counts(): Promise<QueueCounts> {
    const counts = await this.call('counts', () => this.queue.getJobCounts('wait', 'delayed', 'prioritized', 'active'));
    const count = (type: string): number => counts[type] ?? 0;
    return { waiting: count('wait') + count('delayed') + count('prioritized'), running: count('active') };
  }

  /**
   * Removes a waiting (or backing-off) job, or aborts the run in this process and resolves once
   * its handler has settled. A job running in another process is not touched (false).
   */
  async cancel(id: string): Promise<boolean> {
    if (this.abortLocal(id)) return this.settleLocal(id);
    const removed = await this.call('cancel', async () => {
      const state = await this.queue.getJobState(id);
      if (!WAITING_STATES.has(state)) return false;
      // 0 when the job is locked: a worker took it between the two calls.
      return (await this.queue.remove(id)) === 1;
    });
    if (removed) return true;
    // It may have started here meanwhile.
    return this.abortLocal(id) ? this.settleLocal(id) : false;
  }

  close(options: { drainMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(Math.max(0, options.drainMs ?? 0));
    return this.closing;
  }

  private async shutdown(drainMs: number): Promise<void> {
    const worker = this.worker;
    if (worker) {
      if (this.workerClient?.status === 'ready') {
        // Stops fetching at once; resolves when running handlers have settled (their outcomes
        // recorded) and the worker's connections are closed.
        const closed = worker.close().catch((error: unknown) => this.logger?.warn({ err: error }, 'closing the bullmq worker failed'));
        if (!(await settlesWithin(closed, drainMs))) {
          this.abortAll('the queue is shutting down');
          // Aborted handlers reject; BullMQ records the failed attempts (back to delayed) before closing.
          await this.allSettled();
        }
        if (!(await settlesWithin(closed, CLOSE_GRACE_MS))) {
          this.logger?.warn('the bullmq worker did not close in time; cutting its connections (unfinished jobs return once their locks expire)');
        }
      } else {
        // Redis is down: BullMQ's graceful close would wait for it. Settle the handlers here, then
        // force the close; attempts that could not be recorded return once their locks expire.
        if (!(await settlesWithin(this.allSettled(), drainMs))) {
          this.abortAll('the queue is shutting down');
          await this.allSettled();
        }
        await settlesWithin(worker.close(true).catch(() => undefined), CLOSE_GRACE_MS);
      }
    }
    await settlesWithin(this.queue.close().catch(() => undefined), CLOSE_GRACE_MS);
    const clients = [this.producerClient, ...(this.workerClient ? [this.workerClient] : []), ...this.duplicates];
    await Promise.all(clients.map((client) => closeRedisClient(client)));
  }

  private abortAll(reason: string): void {
    for (const run of this.active.values()) run.controller.abort(new DOMException(reason, 'AbortError'));
  }

  private async allSettled(): Promise<void> {
    await Promise.all([...this.active.values()].map((run) => run.settled.promise));
  }

  private async run(handler: JobHandler, job: Job, token: string | undefined): Promise<void> {
    const id = job.id;
    if (id === undefined) throw new UnrecoverableError('a job without an id');
    // Fetched just as close began: hand it back (a failed attempt; it runs again later).
    if (this.closing) throw new Error('the queue is closing');
    // The fair clock moves on; a failure here only costs fairness, never the job.
    if (job.priority > 0) {
      const priority = job.priority;
      void whenReady(this.producerClient)
        .then(() => this.fair.kilnFairStarted(this.key('fair'), priority))
        .catch(() => undefined);
    }
    const run: ActiveRun = { controller: new AbortController(), settled: deferred(), cancelled: false };
    this.active.set(id, run);
    // Tags are whole numbers here (BullMQ priorities): the job's remaining work after `done`
    // units stands `done / weight` (rounded down) after its own tag.
    const weight = fairWeight((job.data ?? {}) as Partial<JobData>);
    const resumePriority = (done: number): number => Math.min(PRIORITY_LIMIT, Math.max(1, job.priority) + Math.floor(Math.max(0, done) / weight));
    const turn: JobTurn = { shouldYield: (done) => this.waitingBefore(resumePriority(done)) };
    try {
      const outcome = await handler({ id }, run.controller.signal, turn);
      if (outcome && !run.cancelled && token !== undefined) {
        // Handed back between units: the job returns to the prioritized set at its resume tag
        // (ahead of its group's later jobs, which have larger tags, and of equal ones), not as a
        // failed attempt. BullMQ moves on to the next job when the processor throws WaitingError.
        await job.changePriority({ priority: resumePriority(outcome.yielded) });
        await job.moveToWait(token);
        throw new WaitingError();
      }
    } catch (error) {
      if (error instanceof WaitingError) throw error;
      if (run.cancelled) {
        const cancelled = new UnrecoverableError(`job ${id} was cancelled`);
        this.cancelErrors.add(cancelled);
        throw cancelled;
      }
      throw error instanceof Error ? error : new Error(String(error));
    } finally {
      if (this.active.get(id) === run) this.active.delete(id);
      run.settled.resolve();
    }
  }

  private afterFailure(job: Job | undefined, error: Error): void {
    if (this.cancelErrors.has(error)) return;
    if (!job) {
      this.logger?.error({ err: error }, 'a job failed for good after stalling too often');
      return;
    }
    const id = job.id ?? '';
    const final = error instanceof UnrecoverableError || error.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    if (!final) {
      this.logger?.debug({ taskUUID: id, attempt: job.attemptsMade, err: error }, 'job attempt failed; it will run again');
      return;
    }
    this.logger?.error({ taskUUID: id, attempts: job.attemptsMade, err: error }, 'job given up');
    try {
      this.options.onGiveUp?.({ id }, error);
    } catch {
      // A failing callback must not break the worker's event handling.
    }
  }

  /** Connection trouble is logged (throttled) by the Redis client already; BullMQ repeats it here. */
  private logError(error: Error, message: string): void {
    if (isConnectionError(error)) this.logger?.debug({ err: error }, message);
    else this.logger?.warn({ err: error }, message);
  }

  private backoff(attemptsMade: number): number {
    const exponential = Math.min(this.retryDelayMs * 2 ** Math.max(0, attemptsMade - 1), MAX_RETRY_DELAY_MS);
    // Jitter spreads reruns of jobs that failed together (e.g. all aborted by one shutdown).
    return Math.max(1, Math.round(exponential * (0.8 + Math.random() * 0.4)));
  }

  /** Whether a job waits with a lower priority (fair tag) than `priority`; false when Redis does not answer. */
  private async waitingBefore(priority: number): Promise<boolean> {
    if (this.closing) return false;
    try {
      const first = await withDeadline(
        () => this.producerClient.zrange(this.key('prioritized'), '0', '0', 'WITHSCORES'),
        this.timeoutMs,
        (message) => new QueueUnavailableError(message),
      );
      // BullMQ scores prioritized jobs priority × 2³² + arrival counter.
      return first.length === 2 && Math.floor(Number(first[1]) / 2 ** 32) < priority;
    } catch {
      return false;
    }
  }

  private get fair(): FairCommands {
    return this.producerClient as unknown as FairCommands;
  }

  private key(suffix: string): string {
    return `${this.prefix}:${this.name}:${suffix}`;
  }

  /** The new job's priority, or 0 when a job of that id is waiting or running already. */
  private async fairTag(job: QueueJob, late: () => boolean): Promise<number> {
    const cost = Number.isFinite(job.cost) && job.cost! >= 0 ? job.cost! : 1;
    const weight = fairWeight(job);
    // The producer connection keeps no offline queue: wait for it as BullMQ's own calls do (and
    // send nothing once the caller's deadline has passed: the group's clock would move for nothing).
    const tag = await whenReadyInTime(this.producerClient, late, () => this.fair.kilnFairTag(
      this.key('fair'),
      this.key('prioritized'),
      this.key('wait'),
      this.key('delayed'),
      this.key('active'),
      this.key(job.id),
      job.group ?? '',
      cost,
      weight,
      PRIORITY_LIMIT,
    ));
    return Number(tag) === 0 ? 0 : Math.max(1, Math.min(PRIORITY_LIMIT, Number(tag)));
  }

  private abortLocal(id: string): boolean {
    const run = this.active.get(id);
    if (!run) return false;
    run.cancelled = true;
    run.controller.abort(new DOMException('the job was cancelled', 'AbortError'));
    return true;
  }

  private async settleLocal(id: string): Promise<true> {
    await this.active.get(id)?.settled.promise;
    return true;
  }

  private call<T>(what: string, operation: (late: () => boolean) => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new QueueUnavailableError('the queue is closed'));
    return withDeadline(
      operation,
      this.timeoutMs,
      (message, cause) => new QueueUnavailableError(`queue ${what} failed on Redis at ${this.where}: ${message}`, { cause }),
    );
  }
}

/** What a job carries in Redis: its group's weight, for the tag of its remaining work after a yield. */
interface JobData {
  readonly weight: number;
}

/** BullMQ custom ids cannot contain ':' nor be integers; task UUIDs never are. */
function checkJobId(id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.includes(':') || /^\d+$/.test(id)) {
    throw new RangeError(`not a valid queue job id: ${JSON.stringify(id)}`);
  }
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}
