import type { Readable } from 'node:stream';
import { ApiError, conflictTaskUUID, queueFull, serviceUnavailable, taskCancelled, taskNotFound, timeoutDeadline, uploadFailed } from '../errors/index.ts';
import type { TaskEvent, TaskEventBus, TaskListener } from '../events/task-events.ts';
import { buildResultItem, processingItem } from '../protocol/result-items.ts';
import { imageCount, type ImageUploadTask, type InferenceTask } from '../protocol/task-types.ts';
import type { EncodeOptions } from '../imaging/encode.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Admission } from '../queue/admission.ts';
import type { TaskQueue } from '../queue/task-queue.ts';
import type { Clock } from '../shared/clock.ts';
import { newUuid, randomSeed } from '../shared/ids.ts';
import type { Logger } from '../shared/logger.ts';
import { settleAll } from '../shared/settle-all.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { TaskConflictError, type DeliveryRecord, type GenerationRecord, type ImageRecord, type TaskRecord, type TaskStore } from '../store/task-store.ts';
import type { EngineRegistry, ImageInputs, ResultDelivery, SafetyChecker } from './ports.ts';
import { describeDelivery } from '../delivery/delivery-log.ts';
import { webhookForError } from '../delivery/delivery-records.ts';
import { progressItem } from './progress.ts';
import { chargeMissing, runTask } from './run-task.ts';
import { isReusedTaskUUID, type Tenancy, type UsageReport } from './tenancy.ts';

const MAX_SEED = 2 ** 31 - 1;

/** Who is asking: the API key a request authenticated with. */
export interface Principal {
  readonly apiKeyId: string;
  /**
   * The base URL the caller reached Kiln at (`http://host:port`, from the request's Host, or the
   * proxy's X-Forwarded-* with KILN_TRUST_PROXY), for image URLs when KILN_PUBLIC_URL is unset.
   */
  readonly publicBase?: string | undefined;
}

export interface TaskServiceDeps {
  readonly store: TaskStore;
  readonly objects: ObjectStore;
  readonly queue: TaskQueue;
  /** The cluster-wide bound on images waiting or running. */
  readonly admission: Admission;
  readonly engines: EngineRegistry;
  readonly inputs: ImageInputs;
  readonly safety?: SafetyChecker;
  readonly delivery?: ResultDelivery;
  readonly events: TaskEventBus;
  readonly metrics?: Metrics;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Operator encode settings (KILN_JPEG_OPTIMIZE_CODING); none: the defaults. */
  readonly encoding?: EncodeOptions;
  /**
   * Public URL of a stored object, e.g. `http://localhost:8080/image/<uuid>.jpg`: under
   * KILN_PUBLIC_URL when it is set, else under `base` (where the client reached Kiln).
   */
  imageUrl(objectKey: string, base?: string): string;
  /** How long ended tasks stay readable through getResponse. */
  readonly retentionMs: number;
  /** How long an uploaded image lives after its last use. */
  readonly uploadRetentionMs: number;
  /** Images waiting or running past which new tasks get 429 (for the error's `limit`). */
  readonly queueCapacity: number;
  /** A resent task (same key, taskUUID and body) attaches to the first instead of `conflictTaskUUID`. */
  readonly idempotentResubmit: boolean;
  /** Per-key fair queueing weight, limits, budgets and the usage ledger (docs/tenancy.md); none: no per-key rules. */
  readonly tenancy?: Tenancy;
  /**
   * How long past its deadline a task may still be `running` before the deadline backstop takes
   * it for abandoned (its run's process died); default 30 s. A live run ends its task at the
   * deadline itself, within moments (the queue's job lock, KILN_QUEUE_LOCK_SECONDS, in the server).
   */
  readonly abandonedRunMs?: number;
  /** Whether a webhook / upload URL may be delivered to; the problem in words, or undefined. */
  checkDeliveryTarget(url: string): Promise<string | undefined>;
}

/** A submission in flight (see `TaskService.inFlight`). */
interface Submission {
  /** Resolves when the submission has its outcome (accepted, attached or refused, with what it undid). */
  readonly done: Promise<void>;
  /** It found the taskUUID inserted by another submission. */
  lostInsert: boolean;
}

/** Overdue tasks read (and ended) per batch by `endOverdue`. */
const OVERDUE_BATCH = 200;
const ABANDONED_RUN_MS = 30_000;

/**
 * The domain service behind both transports: accepts tasks (dedupe, persist, enqueue), answers
 * `getResponse` from the store, and stores uploads.
 */
export class TaskService {
  /**
   * Submissions of this process between their insert and their outcome, by lowercased taskUUID:
   * a resend that finds the task stored waits for them, since a submission that fails after its
   * insert deletes the task again (its client hears the error) and a resend attached to it meanwhile
   * would have been acknowledged for a task that no longer exists.
   */
  private readonly inFlight = new Map<string, Set<Submission>>();

  constructor(private readonly deps: TaskServiceDeps) {}

  /**
   * Waits until the submissions of `taskUUID` in flight in this process have their outcome, but
   * for `own` and those that lost the insert to another (they wait themselves, for the winner:
   * waiting for one another, three at once would never end). Answers whether there were any.
   */
  private async othersSettled(taskUUID: string, own?: Submission): Promise<boolean> {
    const others = [...(this.inFlight.get(taskUUID.toLowerCase()) ?? [])].filter((submission) => submission !== own && !submission.lostInsert);
    await Promise.all(others.map((submission) => submission.done));
    return others.length > 0;
  }

  /** Subscribe to a task's events (results as they finish, errors, end); resolves once the subscription is live. */
  watch(taskUUID: string, listener: TaskListener): Promise<() => void> {
    return this.deps.events.watch(taskUUID, listener);
  }

  /** The engine that serves a model (for `X-Kiln-Engine`). */
  engineFor(model: string): string {
    return this.deps.engines.forModel(model).name;
  }

  /**
   * Enqueues every task the store holds unfinished (after a restart, or whose enqueue was lost
   * when an API process died between storing and enqueueing) and gives each its admission
   * reservation back. Enqueueing is idempotent, so tasks already queued or running elsewhere
   * are untouched. `olderThan` leaves alone tasks younger than that (ms since epoch), which
   * their API process is still enqueueing.
   */
  async requeueUnfinished(olderThan = Number.POSITIVE_INFINITY): Promise<number> {
    const unfinished = (await this.deps.store.listUnfinishedTasks()).filter((task) => task.createdAt < olderThan);
    for (const task of unfinished) {
      // Counted whatever the bound: it was accepted under the bound of its time (which may have
      // been lowered since), and what it holds must keep new tasks out until it has run.
      await this.deps.admission.reserve(task.taskUUID, task.imageCount, { force: true });
      // Read again after the reservation: a task that ended since the list was read (its run gave
      // its reservation back, maybe before this one was made) must not keep one.
      const current = await this.deps.store.getTask(task.taskUUID);
      if (!current || (current.status !== 'queued' && current.status !== 'running')) {
        await this.deps.admission.release(task.taskUUID);
        continue;
      }
      const weight = (await this.deps.tenancy?.weightOf(task.apiKeyId)) ?? 1;
      await this.deps.queue.enqueue({ id: task.taskUUID, group: task.apiKeyId, cost: task.imageCount, weight });
    }
    return unfinished.length;
  }

  /** Starts running queued tasks in this process (worker role), after re-enqueueing those a previous run left unfinished. */
  async start(concurrency: number): Promise<number> {
    const unfinished = await this.requeueUnfinished();
    this.deps.queue.process((job, signal, turn) => runTask(this.deps, job.id, signal, turn), { concurrency });
    // Those whose deadline passed while no process ran, without holding the start up (a run
    // that reaches one first fails it without starting it).
    void this.endOverdue()
      .then((overdue) => overdue > 0 && this.deps.logger.info({ tasks: overdue }, 'ended queued tasks past their deadline'))
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'ending queued tasks past their deadline failed; the sweeper retries'));
    if (unfinished > 0) this.deps.logger.info({ tasks: unfinished }, 'resuming unfinished tasks');
    return unfinished;
  }

  /**
   * Ends the tasks whose `deadlineSeconds` has passed while no run keeps it. The timer that ends
   * a queued task on time lives in the process that accepted it (`watchDeadline`), and a running
   * task's in its run; when that process died or restarted, a task waiting behind a backlog (or
   * put back in it after its worker died) would otherwise fail only once a worker reached it.
   * The sweeper's lease holder runs this first in every pass (KILN_SWEEP_SECONDS), and every
   * process that runs tasks at its start. Queued tasks past their deadline end (one store
   * transaction each, as a cancel) only while still queued: one a run claimed meanwhile is left
   * to the run, whose own timer keeps the deadline. Running tasks end only once their deadline is
   * `abandonedRunMs` behind: a live run would have ended them by then. Tasks stored before
   * migration 7 carry no deadline here.
   */
  async endOverdue(batch = OVERDUE_BATCH): Promise<number> {
    const now = this.deps.clock.now();
    const queued = await this.endOverdueIn('queued', now, batch);
    return queued + (await this.endOverdueIn('running', now - (this.deps.abandonedRunMs ?? ABANDONED_RUN_MS), batch));
  }

  private async endOverdueIn(status: 'queued' | 'running', before: number, batch: number): Promise<number> {
    let ended = 0;
    // Batches by the store's index on (status, deadline_at): only overdue tasks are read. A task
    // that could not be ended (it left the status meanwhile) is not listed again. One that fails
    // is logged and skipped; a batch that ends none (all failing) stops the pass, so a task that
    // fails every time cannot hold it in a loop.
    for (;;) {
      const overdue = await this.deps.store.listOverdueTasks(before, batch, status);
      let progress = 0;
      for (const record of overdue) {
        try {
          const { deadlineSeconds } = JSON.parse(record.request) as InferenceTask;
          const outcome = await this.endAtDeadline(record, deadlineSeconds ?? 0, status === 'queued');
          progress++;
          if (outcome) ended++;
        } catch (error) {
          this.deps.logger.error({ err: error, taskUUID: record.taskUUID }, 'ending a task past its deadline failed; the next sweep retries');
        }
      }
      if (overdue.length < batch || progress === 0) return ended;
    }
  }

  /**
   * Ends a task at its deadline. `onlyQueued`: only while still queued (a run that claimed it
   * meanwhile keeps the deadline itself); otherwise a running task too (one whose run is gone).
   */
  private endAtDeadline(record: TaskRecord, seconds: number, onlyQueued = true): ReturnType<TaskService['endUnfinished']> {
    return this.endUnfinished(record, (count) => withImageCount(timeoutDeadline(record.taskUUID, seconds), count), this.deps.clock.now(), { onlyQueued });
  }

  /**
   * Frees admission reservations whose task ended or never got stored (an API process that
   * died between reserving and storing). Reservations younger than `before` are left alone.
   */
  async reconcileAdmission(before: number): Promise<number> {
    let freed = 0;
    for (const taskUUID of await this.deps.admission.listOlderThan(before)) {
      const task = await this.deps.store.getTask(taskUUID);
      if (task && (task.status === 'queued' || task.status === 'running')) continue;
      await this.deps.admission.release(taskUUID);
      freed++;
    }
    // Tenancy holds the same way (an API process that died between holding and storing).
    const tenancy = this.deps.tenancy;
    if (tenancy) {
      for (const taskUUID of await tenancy.holdsOlderThan(before)) {
        const task = await this.deps.store.getTask(taskUUID);
        if (task && (task.status === 'queued' || task.status === 'running')) continue;
        // Unless a resend stored its task since the read above (it relies on the hold).
        await tenancy.release(taskUUID, { unlessStored: true });
        freed++;
      }
    }
    return freed;
  }

  /**
   * Persists and enqueues an inference task. Throws `conflictTaskUUID`, `queueFull`, or a
   * retryable `serviceUnavailable` when Redis or the database cannot take it (then nothing was
   * accepted: the task is not stored and its taskUUID stays free). `onAccepted` (to subscribe
   * to the task) starts once the task is admitted, beside its insert, and settles before the task
   * is queued, so it can never miss an event. It is not called for a task that attaches before
   * the insert; when the insert then finds the taskUUID taken (a concurrent resend: 'attached')
   * or anything fails, the caller must undo what it did. A resend that finds the task stored by a
   * submission still in flight in this process answers only once that one has its outcome (and
   * is submitted itself when that one failed and took the task back).
   */
  async submitInference(task: InferenceTask, principal: Principal, onAccepted?: () => Promise<void>, resent = false): Promise<'accepted' | 'attached'> {
    // A taskUUID already in use: the same task resent (attach) or a conflict. The check and the
    // admission reservation go out together (one round trip, not two); the reservation comes
    // before the target checks and the insert, so concurrent submissions on any API process
    // cannot overshoot the bound. It is keyed by taskUUID: for a task that exists, only a
    // reservation made by this call is given back (one the task already held stays its own).
    const images = imageCount(task);
    // The key's account and ledger check (tenancy's reads, which change nothing) go out with them:
    // a resent task wastes a read, a new one saves a round trip. A failed read is thrown by
    // `admit` below; until then it is held, not unhandled.
    const lookup = this.deps.tenancy?.lookup(task, principal.apiKeyId);
    lookup?.catch(() => undefined);
    const [found, reservation] = await Promise.allSettled([this.deps.store.getTask(task.taskUUID), this.deps.admission.reserve(task.taskUUID, images)]);
    // Only a reservation this call made is ever given back by it.
    const madeHere = reservation.status === 'fulfilled' && reservation.value === 'reserved';
    const giveBack = async (): Promise<void> => {
      if (madeHere) await this.deps.admission.release(task.taskUUID).catch(() => undefined);
    };
    if (found.status === 'rejected') {
      await giveBack();
      throw found.reason;
    }
    if (found.value) {
      await giveBack();
      let existing: TaskRecord | undefined = found.value;
      // Read again when a submission was in flight, or when the task is still queued: the one that
      // stored it may have failed and taken it back between the read above and now.
      if ((await this.othersSettled(task.taskUUID)) || existing.status === 'queued') {
        existing = await this.deps.store.getTask(task.taskUUID);
        // The submission that stored it failed and took it back: the taskUUID is free again.
        if (!existing) {
          if (resent) throw serviceUnavailable(task.taskUUID, task.taskType, 'a concurrent submission of this taskUUID failed');
          return this.submitInference(task, principal, onAccepted, true);
        }
      }
      this.attachOrConflict(existing, task, principal);
      return 'attached';
    }
    if (reservation.status === 'rejected') throw this.unavailable(reservation.reason, task) ?? reservation.reason;
    if (reservation.value === 'full') throw queueFull(task.taskUUID, task.taskType, this.deps.queueCapacity);
    // The key's rate, image limits and budget (docs/tenancy.md): a refused task holds nothing.
    let weight = 1;
    let held = false;
    let heldHere = false;
    try {
      const admitted = await this.deps.tenancy?.admit(task, principal.apiKeyId, lookup);
      weight = admitted?.weight ?? 1;
      held = admitted?.held ?? false;
      heldHere = admitted?.heldHere ?? false;
    } catch (error) {
      // A conflict with a live task leaves the admission reservation alone: it is the other
      // task's. So does a refusal when the reservation was already there (a concurrent resend
      // made it). A taskUUID charged before has no live task: a reservation made here goes back.
      if (!(error instanceof ApiError && error.code === 'conflictTaskUUID') || isReusedTaskUUID(error)) await giveBack();
      throw this.unavailable(error, task) ?? error;
    }
    let stored = false;
    const key = task.taskUUID.toLowerCase();
    let settled!: () => void;
    const own: Submission = { done: new Promise<void>((resolve) => (settled = resolve)), lostInsert: false };
    const inFlight = this.inFlight.get(key) ?? new Set<Submission>();
    this.inFlight.set(key, inFlight.add(own));
    try {
      // The insert, the subscription and the queue's own preparation (BullMQ: the fair tag) go
      // out together: one round trip on a cluster where they took three. The job is added once
      // the task is stored and watched.
      const persisted = this.persist(held ? { ...task, keyHold: true } : task, principal).then(() => {
        stored = true;
      });
      const subscribed = onAccepted?.();
      const ready = (async (): Promise<void> => {
        await settleAll([persisted, subscribed]);
        // The hold may have gone back with a twin submission's failure (one that found it made,
        // or made it, stored the task, failed and took it back) before this task was stored: the
        // task would run unheld, so it is refused instead (retryable), as when the twin failed.
        if (held && this.deps.tenancy && !(await this.deps.tenancy.isHeld(task.taskUUID))) {
          throw serviceUnavailable(task.taskUUID, task.taskType, 'a concurrent submission of this taskUUID failed');
        }
        // Progress (opt-in): every image starts queued, told before the task can start.
        if (task.progress) {
          const items = Array.from({ length: images }, (_, index) => progressItem(task.taskUUID, index, 'queued'));
          await this.deps.events.emit({ type: 'progress', taskUUID: task.taskUUID, items });
        }
      })();
      // Both settle before anything is decided, so that `stored` is known.
      await settleAll([ready, this.deps.queue.enqueue({ id: task.taskUUID, group: principal.apiKeyId, cost: images, weight }, ready)]);
    } catch (error) {
      if (error instanceof TaskConflictError) {
        // Another submission of the same taskUUID stored it first (a race between two retries):
        // the reservation is that task's, so it stays; this one attaches or conflicts, once the
        // other has its outcome when it runs in this process.
        own.lostInsert = true;
        await this.othersSettled(task.taskUUID, own);
        const winner = await this.deps.store.getTask(task.taskUUID);
        if (!winner) {
          // The copy that stored it failed afterwards and took it back: the taskUUID is free
          // again, and the client may simply send the task once more. That copy gave the
          // reservation back when it deleted the task (a reservation made here is the same one,
          // keyed by taskUUID; releasing it again could free a resend's fresh one).
          if (heldHere) await this.deps.tenancy?.release(task.taskUUID, { unlessStored: true }).catch(() => undefined);
          throw serviceUnavailable(task.taskUUID, task.taskType, 'a concurrent submission of this taskUUID failed');
        }
        // A hold is keyed by taskUUID: when the stored task holds none (it was admitted without
        // one), the hold this call took is nobody's and goes back; when it holds one, it is that.
        if (heldHere && (JSON.parse(winner.request) as InferenceTask).keyHold !== true) {
          await this.deps.tenancy?.release(task.taskUUID).catch(() => undefined);
        }
        this.attachOrConflict(winner, task, principal);
        return 'attached';
      }
      // Nothing half-accepted stays behind: the client hears an error, so the task must not run.
      // What goes back is what this call made: the reservation when it made it (or when the task
      // it deletes was its own), the key's hold when it took it or when the task it deletes held
      // it (a hold a twin submission took stays that twin's; the sweeper frees it if the twin
      // failed too). A hold this call took but whose task a twin stored is the twin's now.
      if (stored) await this.deps.store.deleteTask(task.taskUUID).catch(() => undefined);
      if (stored) await this.deps.admission.release(task.taskUUID).catch(() => undefined);
      else await giveBack();
      // Either way only while the taskUUID is not stored (again): a twin that stored it holds it.
      if ((stored && held) || heldHere) await this.deps.tenancy?.release(task.taskUUID, { unlessStored: true }).catch(() => undefined);
      throw this.unavailable(error, task) ?? error;
    } finally {
      inFlight.delete(own);
      if (inFlight.size === 0 && this.inFlight.get(key) === inFlight) this.inFlight.delete(key);
      settled();
    }
    this.deps.metrics?.tasks.inc({ model: task.model, delivery: task.acknowledgeOnly ? 'async' : 'sync' });
    this.watchDeadline(task);
    return 'accepted';
  }

  /**
   * `dryRun`: the task's price and what the key's budget has left, with nothing charged, stored
   * or queued (docs/tenancy.md).
   */
  async estimate(task: InferenceTask, principal: Principal): Promise<{ cost: number; budgetRemaining?: number }> {
    return this.deps.tenancy ? this.deps.tenancy.estimate(task, principal.apiKeyId) : { cost: 0 };
  }

  /** The caller's own usage ledger rows and totals (`GET /v1/usage`). */
  async usage(principal: Principal, range: { since?: number; until?: number; limit?: number }): Promise<UsageReport> {
    if (!this.deps.tenancy) return { totals: { images: 0, cost: 0 }, rows: [] };
    return this.deps.tenancy.usage({ ...range, apiKeyId: principal.apiKeyId });
  }

  /**
   * A taskUUID already stored: the same key resending the same task (identical after validation
   * and defaults) attaches to it; anything else is `conflictTaskUUID`.
   */
  private attachOrConflict(existing: TaskRecord, task: InferenceTask, principal: Principal): void {
    const now = this.deps.clock.now();
    const readable = existing.expiresAt === null || existing.expiresAt > now;
    // taskUUIDs are case-insensitive: a retry that changed only their case is the same task.
    const canonical = (request: InferenceTask): string =>
      JSON.stringify({ ...request, taskUUID: request.taskUUID.toLowerCase(), publicBase: undefined, keyHold: undefined });
    const same = existing.apiKeyId === principal.apiKeyId && canonical(JSON.parse(existing.request) as InferenceTask) === canonical(task);
    if (this.deps.idempotentResubmit && same && readable) return;
    throw conflictTaskUUID(task.taskUUID, task.taskType);
  }

  /** A retryable 503 for errors that mean a shared service is out of reach. */
  private unavailable(error: unknown, task: InferenceTask): ApiError | undefined {
    const name = error instanceof Error ? error.name : '';
    if (name === 'QueueUnavailableError' || name === 'AdmissionUnavailableError' || name === 'EventBusUnavailableError' || name === 'RateLimiterUnavailableError') {
      this.deps.logger.warn({ taskUUID: task.taskUUID, err: error }, 'a shared service is unavailable; task refused');
      return serviceUnavailable(task.taskUUID, task.taskType, name === 'EventBusUnavailableError' ? 'events' : 'queue');
    }
    return undefined;
  }

  private async persist(task: InferenceTask, principal: Principal): Promise<void> {
    await this.deps.inputs.precheck(task.referenceImages, task.elements, principal.apiKeyId);
    for (const [parameter, url] of [
      ['webhookURL', task.webhookURL],
      ['uploadEndpoint', task.uploadEndpoint],
    ] as const) {
      if (url === undefined) continue;
      const problem = await this.deps.checkDeliveryTarget(url);
      if (problem) {
        throw new ApiError(parameter === 'webhookURL' ? 'invalidWebhookURL' : 'invalidUploadEndpoint', `Invalid value for '${parameter}' parameter. ${problem}`, {
          parameter,
          taskUUID: task.taskUUID,
          taskType: task.taskType,
        });
      }
    }
    const now = this.deps.clock.now();
    const count = imageCount(task);
    const base = task.seed;
    const generations: GenerationRecord[] = Array.from({ length: count }, (_, index) => ({
      taskUUID: task.taskUUID,
      index,
      seed: base === undefined ? randomSeed() : ((base - 1 + index) % MAX_SEED) + 1,
      seriesIndex: task.resultType === 'series' ? index : null,
      status: 'pending',
      imageUUID: null,
      error: null,
      cost: null,
      nsfw: null,
      finishedAt: null,
    }));
    // A TaskConflictError (the taskUUID was taken meanwhile) is left to `submitInference`.
    await this.deps.store.insertTask(
      {
        taskUUID: task.taskUUID,
        apiKeyId: principal.apiKeyId,
        taskType: task.taskType,
        model: task.model,
        engine: this.engineFor(task.model),
        // The base URL the client used travels with the task, for the URLs its worker builds.
        request: JSON.stringify(principal.publicBase === undefined ? task : { ...task, publicBase: principal.publicBase }),
        status: 'queued',
        imageCount: count,
        createdAt: now,
        updatedAt: now,
        finishedAt: null,
        expiresAt: null,
        deadlineAt: task.deadlineSeconds === undefined ? null : now + task.deadlineSeconds * 1000,
      },
      generations,
    );
    if (task.ignoredFields.length > 0) {
      this.deps.logger.debug({ taskUUID: task.taskUUID, fields: task.ignoredFields }, 'ignored compatibility fields');
    }
  }

  /**
   * Full current state of every generation of a task, in index order (runware-protocol.md §4.4).
   * With `maxInlineBytes`, a task whose inline (base64/dataURI) images alone would take more
   * than that in the reply is answered `tooLarge` (with its errors) without reading them.
   */
  async getResponse(
    taskUUID: string,
    principal: Principal,
    maxInlineBytes?: number,
  ): Promise<{ data: Record<string, unknown>[]; errors: ApiError[]; ended: boolean; tooLarge?: true }> {
    const record = await this.deps.store.getTask(taskUUID);
    const now = this.deps.clock.now();
    if (!record || record.apiKeyId !== principal.apiKeyId || (record.expiresAt !== null && record.expiresAt <= now)) {
      throw taskNotFound(taskUUID);
    }
    const task = JSON.parse(record.request) as InferenceTask;
    const ended = record.status === 'done' || record.status === 'failed';
    const generations = await this.deps.store.listGenerations(taskUUID);
    // The image records of the finished generations, read once (sizes for the cap, keys for the items).
    const images = new Map<string, ImageRecord | undefined>();
    await Promise.all(
      generations.flatMap((g) => (g.status === 'success' && g.imageUUID ? [g.imageUUID] : [])).map(async (uuid) => images.set(uuid, await this.deps.store.getImage(uuid))),
    );
    // The base64 text of the stored bytes is a lower bound of what inline items would take.
    const inline = task.outputType === 'URL' ? 0 : [...images.values()].reduce((sum, image) => sum + (image ? Math.ceil(image.bytes / 3) * 4 : 0), 0);
    const tooLarge = maxInlineBytes !== undefined && inline > maxInlineBytes;
    const data: Record<string, unknown>[] = [];
    const errors: ApiError[] = [];
    // A failure that ended several images is stored on each of them and answered once.
    const groupFailures = new Set<string>();
    const waiting = await this.progressOf(record);
    for (const g of generations) {
      if (g.status === 'pending') data.push({ ...processingItem(taskUUID), ...waiting });
      else if (g.status === 'error') {
        const body = JSON.parse(g.error ?? '{}') as { code?: string; message?: string } & Record<string, unknown>;
        const { code, message, group, ...rest } = body;
        if (group !== undefined) {
          if (groupFailures.has(String(group))) continue;
          groupFailures.add(String(group));
        }
        errors.push(
          new ApiError((code ?? 'internalServerError') as ApiError['code'], message ?? 'The generation failed.', {
            taskUUID,
            taskType: 'imageInference',
            extra: { ...rest, status: 'error' },
          }),
        );
      } else if (!tooLarge) data.push(await this.successItem(task, g, g.imageUUID ? images.get(g.imageUUID) : undefined, principal.publicBase ?? task.publicBase));
    }
    for (const upload of await this.deps.store.listFailedUploads(taskUUID)) {
      const error = uploadFailed(taskUUID, upload.imageUUID ?? '', upload.lastError);
      errors.push(new ApiError(error.code, error.message, { ...error.details, extra: { ...error.details.extra, status: 'error' } }));
    }
    // Too large: no item is built (the images are not read); the errors still go out.
    return tooLarge ? { data: [], errors, ended, tooLarge } : { data, errors, ended };
  }

  /**
   * Kiln extension on `processing` items: `kilnStatus` queued or running, with the images ahead
   * (`queuePosition`) or the start time (`startedAt`, ISO 8601).
   */
  private async progressOf(record: TaskRecord): Promise<Record<string, unknown>> {
    if (record.status === 'running') {
      return { kilnStatus: 'running', ...(record.claimedAt == null ? {} : { startedAt: new Date(record.claimedAt).toISOString() }) };
    }
    if (record.status === 'queued') return { kilnStatus: 'queued', queuePosition: await this.deps.store.imagesAhead(record.createdAt) };
    return {};
  }

  private async successItem(task: InferenceTask, g: GenerationRecord, image: ImageRecord | undefined, base: string | undefined): Promise<Record<string, unknown>> {
    const objectKey = image?.objectKey ?? `${g.imageUUID}.${task.outputFormat.toLowerCase()}`;
    const bytes = task.outputType === 'URL' || !image ? undefined : await this.deps.objects.get(image.objectKey);
    return buildResultItem({
      taskUUID: task.taskUUID,
      imageUUID: g.imageUUID ?? '',
      seed: g.seed,
      outputType: task.outputType,
      outputFormat: task.outputFormat,
      status: 'success',
      ...(task.outputType === 'URL' ? { imageURL: this.deps.imageUrl(objectKey, base) } : { bytes: bytes ?? Buffer.alloc(0) }),
      ...(task.includeCost && g.cost !== null ? { cost: g.cost } : {}),
      ...(g.nsfw === null ? {} : { nsfw: g.nsfw }),
      ...(g.seriesIndex === null ? {} : { seriesIndex: g.seriesIndex }),
    });
  }

  /**
   * `cancelTask` (Kiln extension): the caller's own task only (another key's is `taskNotFound`).
   * The cancel claims the task, which fences out a worker running it (none of its later writes
   * land), tells that worker to stop its engine, and ends every image still pending with one
   * `taskCancelled` error item; nothing unfinished is charged. Answers what was cancelled and
   * what had finished. A task that has ended is answered as it stands.
   */
  async cancelTask(taskUUID: string, principal: Principal): Promise<Record<string, unknown>> {
    const record = await this.deps.store.getTask(taskUUID);
    const now = this.deps.clock.now();
    if (!record || record.apiKeyId !== principal.apiKeyId || (record.expiresAt !== null && record.expiresAt <= now)) {
      throw taskNotFound(taskUUID);
    }
    const outcome = await this.endUnfinished(record, (count) => withImageCount(taskCancelled(record.taskUUID), count), now);
    if (!outcome) {
      const generations = await this.deps.store.listGenerations(taskUUID);
      return { taskType: 'cancelTask', taskUUID, cancelledImages: 0, finishedImages: generations.flatMap((g) => (g.status === 'success' && g.imageUUID ? [g.imageUUID] : [])) };
    }
    const cancelled = outcome.cancelled.length;
    const finished = outcome.finished;
    return { taskType: 'cancelTask', taskUUID, cancelledImages: cancelled, finishedImages: finished };
  }

  /**
   * Ends a task that has not ended, whatever it is doing, with one error item for its unfinished
   * images (a cancel, a deadline): one store transaction ends it (a worker taking the task
   * meanwhile, or one running it, can neither write after it nor claim it again), then a worker
   * running it is told to stop its engine, waiters get the error and the end, the key's hold and
   * the admission reservation go back, and the webhook is sent. `undefined` when it had ended.
   */
  private async endUnfinished(
    record: TaskRecord,
    errorFor: (count: number) => ApiError,
    now: number,
    options: { onlyQueued?: boolean } = {},
  ): Promise<{ cancelled: number[]; finished: string[] } | undefined> {
    const task = JSON.parse(record.request) as InferenceTask;
    const log = this.deps.logger.child({ taskUUID: record.taskUUID });
    let hook: DeliveryRecord | undefined;
    const outcome = await this.deps.store.cancelTask(
      record.taskUUID,
      now,
      now + this.deps.retentionMs,
      // `group` (not sent) lets getResponse answer the ended images once.
      (indexes) => JSON.stringify({ ...errorFor(indexes.length).toJSON(), group: indexes[0] }),
      task.webhookURL === undefined
        ? undefined
        : (stored) => {
            const { group: _group, ...body } = JSON.parse(stored) as Record<string, unknown>;
            hook = webhookForError({ taskUUID: record.taskUUID, apiKeyId: record.apiKeyId, now }, task.webhookURL!, body);
            return hook;
          },
      options,
    );
    if (!outcome) return undefined;
    const count = outcome.cancelled.length;
    // The end is committed: every step below runs whatever the one before it did. An event the
    // bus could not take is logged (a waiting client reads the end with getResponse, and a
    // worker's run is fenced out already); nothing would retry the bookkeeping after it.
    const emit = (event: TaskEvent): Promise<void> =>
      this.deps.events.emit(event).catch((failure: unknown) => log.warn({ err: failure, event: event.type }, 'could not publish an event of an ended task'));
    // A worker running the task stops its engine call (its writes are fenced out already).
    await emit({ type: 'cancel', taskUUID: record.taskUUID });
    if (count > 0) {
      const error = errorFor(count).forTask(record.taskUUID, 'imageInference');
      for (let i = 0; i < count; i++) this.deps.metrics?.images.inc({ model: task.model, outcome: error.code });
      await emit({ type: 'error', taskUUID: record.taskUUID, error });
      if (task.keyHold) await this.deps.tenancy?.refund(record.taskUUID, count).catch((failure: unknown) => log.warn({ err: failure }, 'refund failed; the hold is released below'));
    }
    await this.deps.admission.release(record.taskUUID).catch((failure: unknown) => log.warn({ err: failure }, 'admission release failed; the sweeper reconciles it'));
    // Images a run stored but did not charge (it died, or its charge failed, before the end) are
    // charged before the key's hold goes: no run will end this task and charge them.
    if (this.deps.tenancy && outcome.finished.length > 0) {
      await chargeMissing({ deps: this.deps, record, task }).catch((failure: unknown) => log.error({ err: failure }, 'charging the task’s images failed'));
    }
    if (task.keyHold) await this.deps.tenancy?.release(record.taskUUID).catch((failure: unknown) => log.warn({ err: failure }, 'tenancy release failed; the sweeper reconciles it'));
    await emit({ type: 'end', taskUUID: record.taskUUID });
    // The webhook was stored with the end; sent here when this process delivers, else by a worker.
    if (hook) void this.deps.delivery?.dispatch([hook]).catch(() => undefined);
    log.info({ ended: count, finished: outcome.finished.length, code: errorFor(count).code }, 'task ended early');
    return outcome;
  }

  /**
   * At a task's deadline (`deadlineSeconds`), a task still queued ends with `timeoutDeadline`
   * then, not when a worker reaches it. A running task is stopped by its worker's own timer.
   * Best effort in this process: the worker checks the deadline again when it takes the task.
   */
  private watchDeadline(task: InferenceTask): void {
    if (task.deadlineSeconds === undefined) return;
    const seconds = task.deadlineSeconds;
    const timer = setTimeout(() => {
      void (async () => {
        const record = await this.deps.store.getTask(task.taskUUID);
        if (record?.status === 'queued') await this.endAtDeadline(record, seconds);
      })().catch((error: unknown) => this.deps.logger.warn({ err: error, taskUUID: task.taskUUID }, 'ending a queued task at its deadline failed; its worker will'));
    }, seconds * 1000);
    timer.unref();
  }

  /**
   * `getDeliveries` (Kiln extension): the task's webhook and upload deliveries with every
   * attempt, for the key that owns the task. Receivers are shown by host only (their URLs may
   * carry tokens).
   */
  async getDeliveries(taskUUID: string, principal: Principal): Promise<Record<string, unknown>> {
    const record = await this.deps.store.getTask(taskUUID);
    const deliveries = await this.deps.store.listTaskDeliveries(taskUUID);
    // Deliveries outlive their task record (a webhook may still be retrying): ownership is theirs too.
    const owner = record?.apiKeyId ?? deliveries[0]?.delivery.apiKeyId;
    if (owner !== principal.apiKeyId) throw taskNotFound(taskUUID);
    const own = deliveries.filter(({ delivery }) => delivery.apiKeyId === principal.apiKeyId);
    return { taskType: 'getDeliveries', taskUUID, deliveries: own.map(({ delivery, attempts }) => describeDelivery(delivery, attempts)) };
  }

  /**
   * `redeliver` (Kiln extension): sends a settled or failed delivery again, under the same id
   * (`webhook-id`), with a fresh retry schedule; its attempts log continues. A delivery still
   * pending is answered as it stands.
   */
  async redeliver(deliveryId: string, principal: Principal): Promise<Record<string, unknown>> {
    const delivery = await this.deps.store.getDelivery(deliveryId);
    if (!delivery || delivery.apiKeyId !== principal.apiKeyId) {
      throw new ApiError('notFound', `No delivery '${deliveryId}' of this API key (getDeliveries lists a task's deliveries).`, { parameter: 'deliveryId' });
    }
    if (delivery.status !== 'pending') {
      const again = { ...delivery, status: 'pending' as const, attempts: 0, nextAttemptAt: this.deps.clock.now() };
      await this.deps.store.updateDelivery(deliveryId, {
        status: again.status,
        attempts: again.attempts,
        nextAttemptAt: again.nextAttemptAt,
        lastError: delivery.lastError,
        // Kept (with its log) as long as a new delivery would be.
        createdAt: again.nextAttemptAt,
      });
      // Sent here when this process delivers; otherwise a worker's poll takes it.
      void this.deps.delivery?.dispatch([again]).catch((error: unknown) => this.deps.logger.warn({ err: error, deliveryId }, 'redelivery failed to start'));
    }
    return { taskType: 'redeliver', deliveryId, taskUUID: delivery.taskUUID, kind: delivery.kind, status: 'pending' };
  }

  /** Stores an uploaded image and answers its `imageUUID` and `imageURL`. */
  async uploadImage(task: ImageUploadTask, principal: Principal, signal: AbortSignal): Promise<Record<string, unknown>> {
    // A taskUUID in use is a conflict (an inference task's, another upload's); the same key
    // sending the same image again (a retry whose answer was lost) gets the first answer.
    if (await this.deps.store.getTask(task.taskUUID)) throw conflictTaskUUID(task.taskUUID, task.taskType);
    // An imageUUID as `image` copies a stored image: only the key that owns it may do that
    // (otherwise any key could publish another tenant's private image under a public URL).
    await this.deps.inputs.precheck([task.image], [], principal.apiKeyId).catch((error: unknown) => {
      if (!(error instanceof ApiError)) throw error;
      throw new ApiError('invalidImage', error.message.replace(/'inputs\.referenceImages\[0\]'/, "'image'"), {
        parameter: 'image',
        taskUUID: task.taskUUID,
        taskType: task.taskType,
      });
    });
    const encoded = await this.deps.inputs.normaliseUpload(task.image, signal);
    const safety = this.deps.safety;
    if (safety?.checkInputs) {
      const verdict = await safety.classify(encoded, { taskUUID: task.taskUUID, what: 'upload' });
      if (verdict.nsfw && safety.policy === 'block') {
        throw new ApiError('nsfwContentDetected', 'The uploaded image was refused by the safety check.', { parameter: 'image' });
      }
    }
    const earlier = await this.uploadedBefore(task, principal, encoded.bytes);
    if (earlier) return earlier;
    const now = this.deps.clock.now();
    const imageUUID = newUuid();
    const objectKey = `${imageUUID}.${encoded.format}`;
    await this.deps.objects.put(objectKey, encoded.bytes);
    await this.deps.store.insertImage({
      imageUUID,
      kind: 'upload',
      taskUUID: task.taskUUID,
      apiKeyId: principal.apiKeyId,
      format: encoded.format,
      width: encoded.width,
      height: encoded.height,
      bytes: encoded.bytes.byteLength,
      objectKey,
      createdAt: now,
      expiresAt: now + this.deps.uploadRetentionMs,
      servable: true,
    });
    // Two sends of one taskUUID at once both get this far: the first upload stored answers for
    // both, and the other removes its own copy.
    const first = await this.deps.store.findUpload(task.taskUUID);
    if (first && first.imageUUID !== imageUUID) {
      await Promise.all([this.deps.store.deleteImage(imageUUID), this.deps.objects.delete(objectKey)]);
      const answer = await this.uploadedBefore(task, principal, encoded.bytes);
      if (answer) return answer;
    }
    return { taskType: 'imageUpload', taskUUID: task.taskUUID, imageUUID, imageURL: this.deps.imageUrl(objectKey, principal.publicBase) };
  }

  /**
   * The answer of an upload already stored under the task's taskUUID when it is the same key's
   * and the same image (byte for byte, once normalised); a conflict when it is anything else;
   * undefined when there is none.
   */
  private async uploadedBefore(task: ImageUploadTask, principal: Principal, bytes: Uint8Array): Promise<Record<string, unknown> | undefined> {
    const existing = await this.deps.store.findUpload(task.taskUUID);
    if (!existing) return undefined;
    const live = existing.expiresAt === null || existing.expiresAt > this.deps.clock.now();
    const same = live && existing.apiKeyId === principal.apiKeyId && (await this.deps.objects.get(existing.objectKey))?.equals(bytes) === true;
    if (!same) throw conflictTaskUUID(task.taskUUID, task.taskType);
    return { taskType: 'imageUpload', taskUUID: task.taskUUID, imageUUID: existing.imageUUID, imageURL: this.deps.imageUrl(existing.objectKey, principal.publicBase) };
  }

  /**
   * A stream of a servable image with its length and type, or `undefined` (unknown, expired,
   * or not a URL output). The caller consumes or destroys the stream.
   */
  async openServableImage(imageUUID: string, extension: string): Promise<{ stream: Readable; bytes: number; format: string } | undefined> {
    const image = await this.deps.store.getImage(imageUUID);
    const now = this.deps.clock.now();
    if (!image || !image.servable || image.format !== extension) return undefined;
    if (image.expiresAt !== null && image.expiresAt <= now) return undefined;
    const object = await this.deps.objects.open(image.objectKey);
    return object && { ...object, format: image.format };
  }
}


/** The same error, reported once for `count` images (docs/protocol.md: failures that end several images). */
function withImageCount(error: ApiError, count: number): ApiError {
  return new ApiError(error.code, error.message, { ...error.details, extra: { ...error.details.extra, imageCount: count } });
}
