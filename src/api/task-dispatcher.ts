import { ApiError, conflictTaskUUID, invalidApiKey, toApiError } from '../errors/index.ts';
import { ackItem } from '../protocol/result-items.ts';
import type { TaskEvent } from '../events/task-events.ts';
import { imageCount, type AuthenticationTask, type InferenceTask, type Task } from '../protocol/task-types.ts';
import { parseTask } from '../protocol/validate-task.ts';
import type { Logger } from '../shared/logger.ts';
import type { Principal, TaskService } from '../tasks/task-service.ts';

/** Where the answers to one request (REST) or one frame (WebSocket) go; only framing differs. */
export interface ReplySink {
  /** One result item. */
  data(item: Record<string, unknown>): void;
  /** One error object (already tied to its task). */
  error(error: ApiError): void;
  /** Several items and errors that must travel together (a `getResponse` poll). */
  batch(items: Record<string, unknown>[], errors: ApiError[]): void;
  /** A problem reported after the results (`uploadFailed`); the results stand. */
  notice(error: ApiError): void;
  /** Progress items of a task sent with `progress: true` (WebSocket only; other sinks leave it out). */
  progress?(items: readonly Record<string, unknown>[]): void;
  /** The sink starts waiting for a sync task's results (WebSocket: the session tracks it for resume). */
  opened?(taskUUID: string): void;
  /** The sync task is fully answered (or the wait ended). */
  closed?(taskUUID: string): void;
  /** Bytes the reply may still carry (REST's reply cap); absent: no cap. */
  room?(): number;
  /** A `getResponse` answer was not built: its inline images alone would not fit in `room()`. */
  tooLarge?(taskUUID: string, taskType: string): void;
}

/** Transport-specific parts of handling tasks. */
export interface DispatchContext {
  /** The authenticated caller, if any (waits for an authentication still being checked). */
  principal(): Promise<Principal | undefined>;
  /** Handles an `authentication` task; returns the answer item or throws `invalidApiKey`. */
  authenticate(task: AuthenticationTask): Promise<Record<string, unknown>>;
  /** Validate only (`dryRun=1` on the WebSocket URL). */
  readonly dryRun: boolean;
  /** How long a sync inference may hold the reply before answering with a timeout error. */
  readonly syncTimeoutMs: number;
  /** Aborted when the client goes away (REST) or the server shuts down: sync waits end then. */
  readonly signal: AbortSignal;
  /**
   * REST: a sync answer ends once every image has its result or error; what follows (upload
   * outcomes, `uploadFailed`) goes to getResponse and webhooks. WebSocket keeps sending it.
   */
  readonly endAtLastImage?: boolean;
}

export class TaskDispatcher {
  constructor(
    private readonly service: TaskService,
    private readonly logger: Logger,
  ) {}

  /**
   * Validates and runs every task of a request, in order for authentication (which may
   * precede the others) and concurrently for the rest. Resolves when every task has been
   * answered completely (sync inference: all its images).
   */
  async dispatch(rawTasks: readonly unknown[], context: DispatchContext, sink: ReplySink): Promise<void> {
    const running: Promise<void>[] = [];
    // Tasks of one request run concurrently: the same taskUUID twice in it is a conflict at once
    // (a resend is a later request), so two of them can never share one admission or budget hold.
    const inference = new Set<string>();
    // Polls run one after another: each holds its task's images (inline ones in base64) while
    // it is answered, and a request may carry a hundred of them.
    let polls: Promise<void> = Promise.resolve();
    for (const raw of rawTasks) {
      const parsed = parseTask(raw);
      if (!parsed.ok) {
        sink.error(parsed.error);
        continue;
      }
      const task = parsed.task;
      if (task.taskType === 'imageInference') {
        const key = task.taskUUID.toLowerCase();
        if (inference.has(key)) {
          sink.error(conflictTaskUUID(task.taskUUID, task.taskType));
          continue;
        }
        inference.add(key);
      }
      if (task.taskType === 'authentication') {
        try {
          sink.data(await context.authenticate(task));
        } catch (thrown) {
          sink.error(toApiError(thrown));
        }
        continue;
      }
      if (task.taskType === 'getResponse') {
        polls = polls.then(() => this.runOne(task, context, sink));
        running.push(polls);
      } else running.push(this.runOne(task, context, sink));
    }
    await Promise.all(running);
  }

  private async runOne(task: Exclude<Task, AuthenticationTask>, context: DispatchContext, sink: ReplySink): Promise<void> {
    try {
      if (task.taskType === 'ping') {
        sink.data({ taskType: 'ping', pong: true, ...(task.taskUUID === undefined ? {} : { taskUUID: task.taskUUID }) });
        return;
      }
      const principal = await context.principal();
      if (!principal) {
        const error = invalidApiKey();
        throw new ApiError(error.code, 'Authenticate first: send an authentication task with your API key.', {
          ...error.details,
          ...(task.taskUUID === undefined ? {} : { taskUUID: task.taskUUID }),
          taskType: task.taskType,
        });
      }
      switch (task.taskType) {
        case 'imageInference':
          await this.inference(task, principal, context, sink);
          return;
        case 'imageUpload':
          if (context.dryRun) sink.data({ taskType: task.taskType, taskUUID: task.taskUUID });
          else sink.data(await this.service.uploadImage(task, principal, context.signal));
          return;
        case 'cancelTask':
          if (context.dryRun) sink.data({ taskType: task.taskType, taskUUID: task.taskUUID });
          else sink.data(await this.service.cancelTask(task.taskUUID, principal));
          return;
        case 'getDeliveries':
          sink.data(await this.service.getDeliveries(task.taskUUID, principal));
          return;
        case 'redeliver':
          if (context.dryRun) sink.data({ taskType: task.taskType, deliveryId: task.deliveryId });
          else sink.data(await this.service.redeliver(task.deliveryId, principal));
          return;
        case 'getResponse': {
          const room = sink.room?.();
          const { data, errors, tooLarge } = await this.service.getResponse(task.taskUUID, principal, room);
          if (tooLarge && sink.tooLarge) {
            sink.tooLarge(task.taskUUID, task.taskType);
            for (const error of errors) sink.error(error);
          } else sink.batch(data, errors);
          return;
        }
      }
    } catch (thrown) {
      const error = toApiError(thrown);
      if (error.code === 'internalServerError') this.logger.error({ err: error.details.cause ?? thrown }, 'task failed');
      const taskUUID = 'taskUUID' in task && task.taskUUID !== undefined ? task.taskUUID : undefined;
      sink.error(taskUUID === undefined ? error : error.forTask(taskUUID, task.taskType));
    }
  }

  private async inference(task: InferenceTask, principal: Principal, context: DispatchContext, sink: ReplySink): Promise<void> {
    if (context.dryRun) {
      // The price it would have and the key's budget left (docs/tenancy.md); nothing is charged, stored or queued.
      sink.data({ ...ackItem(task.taskUUID), ...(await this.service.estimate(task, principal)) });
      return;
    }
    if (task.acknowledgeOnly) {
      await this.service.submitInference(task, principal);
      sink.data(ackItem(task.taskUUID));
      return;
    }
    await this.waitFor(task.taskUUID, context, sink, new Set(), imageCount(task), async (listener) => {
      let stop = (): void => {};
      let subscribed = false;
      // Subscribe beside the task's insert and before it can run, so a fast task cannot finish
      // before anyone listens. Until the submission has settled, events are held back: when two
      // submissions of one taskUUID race, the one stored may be another key's task, whose events
      // are not this client's. A submission that fails drops them with the subscription.
      let held: TaskEvent[] | undefined = [];
      const gate = (event: TaskEvent): void => {
        if (held) held.push(event);
        else listener(event);
      };
      let outcome: 'accepted' | 'attached';
      try {
        outcome = await this.service.submitInference(task, principal, async () => {
          stop = await this.service.watch(task.taskUUID, gate);
          subscribed = true;
        });
      } catch (error) {
        held = undefined;
        stop();
        throw error;
      }
      const early = held;
      held = undefined;
      // The same task resent (a client's retry): what is stored is replayed, the rest follows live.
      if (!subscribed) return { stop: await this.service.watch(task.taskUUID, listener), replay: outcome === 'attached' };
      for (const event of early) listener(event);
      return { stop, replay: outcome === 'attached' };
    });
  }

  /** The caller's own usage ledger (`GET /v1/usage`). */
  usage(principal: Principal, range: { since?: number; until?: number; limit?: number }): ReturnType<TaskService['usage']> {
    return this.service.usage(principal, range);
  }

  /**
   * Continues a sync wait that began on another API process (a WebSocket session resumed
   * here): what the client was not sent is read from the store, the rest follows live.
   * `sent` holds the keys of what reached the client (imageUUIDs, and `error#n` per error).
   */
  async resume(taskUUID: string, principal: Principal, sent: ReadonlySet<string>, context: DispatchContext, sink: ReplySink): Promise<void> {
    try {
      await this.waitFor(taskUUID, context, sink, sent, undefined, async (listener) => ({
        stop: await this.service.watch(taskUUID, listener),
        replay: true,
      }));
    } catch (thrown) {
      sink.error(toApiError(thrown).forTask(taskUUID, 'imageInference'));
    }
  }

  /**
   * Waits for a sync task's results and forwards them to the sink, one item per image, until
   * the task ends, the sync window closes, or the server stops. `subscribe` starts listening
   * (and, for a new task, submits it); with `replay`, results already stored are sent first,
   * skipping what `sent` says the client has.
   */
  private async waitFor(
    taskUUID: string,
    context: DispatchContext,
    sink: ReplySink,
    sent: ReadonlySet<string>,
    images: number | undefined,
    subscribe: (listener: (event: TaskEvent) => void) => Promise<{ stop: () => void; replay: boolean }>,
  ): Promise<void> {
    const seen = new Set(sent);
    let errorsToSkip = [...sent].filter((key) => key.startsWith('error#')).length;
    let over = false;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve)).then(() => {
      over = true;
    });
    // Images answered so far (an error that ended several counts them all: its `imageCount`).
    let settled = 0;
    const settle = (count: number): void => {
      settled += count;
      if (context.endAtLastImage && images !== undefined && settled >= images) finish();
    };
    const end = (error: ApiError): void => {
      sink.error(error);
      finish();
    };
    // Errors and notices sent, by what they say: a replay from the store sends only what the
    // live stream has not (two images can fail with the same words, so they are counted).
    const sentErrors = new Map<string, number>();
    // Errors and notices heard live, by what they say: one the store's replay already sent (a
    // resync read it before its late live copy arrived) is not sent, nor counted, twice.
    const heardErrors = new Map<string, number>();
    const repeated = (key: string, fromStore: boolean): boolean => {
      if (fromStore) return false;
      const heard = (heardErrors.get(key) ?? 0) + 1;
      heardErrors.set(key, heard);
      return heard <= (sentErrors.get(key) ?? 0);
    };
    const forward = (event: TaskEvent, fromStore = false): void => {
      if (event.type === 'result') {
        const imageUUID = typeof event.item.imageUUID === 'string' ? event.item.imageUUID : undefined;
        if (imageUUID !== undefined && seen.has(imageUUID)) return;
        if (imageUUID !== undefined) seen.add(imageUUID);
        sink.data({ ...event.item });
        settle(1);
      } else if (event.type === 'error') {
        const key = errorKey(event.error);
        if (repeated(key, fromStore)) return;
        sentErrors.set(key, (sentErrors.get(key) ?? 0) + 1);
        if (errorsToSkip > 0) errorsToSkip--;
        else sink.error(event.error);
        const count = event.error.details.extra?.imageCount;
        settle(typeof count === 'number' ? count : 1);
      } else if (event.type === 'notice') {
        const key = errorKey(event.error);
        if (repeated(key, fromStore)) return;
        sentErrors.set(key, (sentErrors.get(key) ?? 0) + 1);
        sink.notice(event.error);
      }
      else if (event.type === 'progress') sink.progress?.(event.items.map((item) => ({ ...item })));
      else if (event.type === 'resync') {
        // The bus was cut off for a while: what it missed is read from the store (sent once,
        // as the replay skips what the client has), and a task that ended meanwhile ends the wait.
        void replayStored()
          .then((ended) => {
            if (ended) finish();
          })
          .catch(() => undefined);
      }
      else if (event.type === 'end') {
        // Events of one task may come from two processes (a worker's result, a cancel's end):
        // when images are unaccounted for, what the store holds and the client was not sent goes
        // out before the wait ends.
        if (over || (images !== undefined && settled >= images)) finish();
        else void replayStored().catch(() => false).finally(finish);
      }
    };
    const replayStored = async (): Promise<boolean> => {
      const principal = await context.principal();
      if (!principal) throw invalidApiKey();
      const state = await this.service.getResponse(taskUUID, principal);
      for (const item of state.data) if (item.status !== 'processing') forward({ type: 'result', taskUUID, item: withoutStatus(item) }, true);
      const stored = new Map<string, number>();
      for (const error of state.errors) {
        const key = errorKey(error);
        stored.set(key, (stored.get(key) ?? 0) + 1);
        if ((stored.get(key) ?? 0) <= (sentErrors.get(key) ?? 0)) continue;
        // Upload failures are notices (never counted as images, never error frames over WebSocket).
        forward({ type: error.code === 'uploadFailed' ? 'notice' : 'error', taskUUID, error }, true);
      }
      return state.ended;
    };
    const timer = setTimeout(
      () =>
        end(
          new ApiError(
            'timeoutProvider',
            'The task did not finish within the synchronous window. It keeps running; fetch its results with getResponse.',
            { taskUUID, taskType: 'imageInference' },
          ),
        ),
      context.syncTimeoutMs,
    );
    // The wait ends when the client goes away or the server stops; the task itself is kept and
    // resumes after a restart.
    const onAbort = (): void =>
      end(
        new ApiError('serviceUnavailable', 'The server is shutting down. The task resumes when it is back; read it with getResponse.', {
          taskUUID,
          taskType: 'imageInference',
          retryable: true,
        }),
      );
    context.signal.addEventListener('abort', onAbort, { once: true });
    let stop = (): void => {};
    try {
      sink.opened?.(taskUUID);
      const subscription = await subscribe(forward);
      stop = subscription.stop;
      if (subscription.replay && (await replayStored())) finish();
      await finished;
    } finally {
      clearTimeout(timer);
      context.signal.removeEventListener('abort', onAbort);
      stop();
      sink.closed?.(taskUUID);
    }
  }
}

/** What makes two error items the same one (the stored copy carries `status`, the live one not). */
function errorKey(error: ApiError): string {
  const { status: _status, ...extra } = error.details.extra ?? {};
  return JSON.stringify([error.code, error.message, error.details.parameter ?? null, extra]);
}

/** A stored result as the live stream sends it (getResponse items carry `status`). */
function withoutStatus(item: Record<string, unknown>): Record<string, unknown> {
  const { status: _status, ...rest } = item;
  return rest;
}
