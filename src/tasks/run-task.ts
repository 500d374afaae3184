import { MessageChannel } from 'node:worker_threads';
import type { GeneratedImage, ImageEngine, ImageSlot, InputImage } from '../engines/spec/image-engine.ts';
import { ApiError, taskCancelled, timeoutDeadline, toApiError, uploadFailed } from '../errors/index.ts';
import type { Logger } from '../shared/logger.ts';
import { encodeRaw, ensureFormat } from '../imaging/encode.ts';
import { MODELS, type Size } from '../models/model-registry.ts';
import { buildResultItem } from '../protocol/result-items.ts';
import type { InferenceTask } from '../protocol/task-types.ts';
import { newUuid } from '../shared/ids.ts';
import { runLimited } from '../shared/limit.ts';
import { ProgressReporter } from './progress.ts';
import { stageSlots } from './stage-slots.ts';
import { TaskTimer } from '../metrics/task-timer.ts';
import { ClaimLostError, type GenerationRecord, type TaskRecord } from '../store/task-store.ts';
import { uploadOf, webhookForError, webhookForItem } from '../delivery/delivery-records.ts';
import type { TaskServiceDeps } from './task-service.ts';
import { fromMicros, toMicros } from '../store/tenancy-store.ts';
import type { JobTurn, JobYield } from '../queue/task-queue.ts';

const FORMAT = { JPG: 'jpg', PNG: 'png', WEBP: 'webp' } as const;

/**
 * Frees an engine's raw pixels once they are encoded, instead of leaving tens of megabytes per
 * large image to the garbage collector (which lets several of them pile up: V8 sees a small
 * heap). Moving the buffer into a message that is never delivered detaches it and releases its
 * memory at once. Only a buffer the image owns whole is freed (never a shared or borrowed one);
 * the pixels an engine hands to `tasks/` are not read again by anyone after the encode.
 */
const RELEASE_BYTES = 8 * 2 ** 20;

/** An image's weight in the encode stage's pixel budget: its pixels, unless it comes encoded in the format asked for (nothing to encode then). */
function pixelsOf(image: GeneratedImage, format: string): number {
  const size = image.pixels ?? (image.encoded && image.encoded.format !== format ? image.encoded : undefined);
  return size ? size.width * size.height : 0;
}

function releasePixels(image: GeneratedImage): void {
  const data = image.pixels?.data;
  // Small images are left to the collector: a message channel costs more than they weigh.
  if (!data || data.byteLength < RELEASE_BYTES || !(data.buffer instanceof ArrayBuffer) || data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) return;
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(null, [data.buffer]);
  port1.close();
  port2.close();
}

/** Size rule of kiln-extensions.md: the request's size, else the 1K size closest to the first reference's aspect, else 1024×1024. */
export function resolveSize(task: InferenceTask, firstReference: InputImage | undefined): Size {
  if (task.width !== undefined && task.height !== undefined) return { width: task.width, height: task.height };
  const model = MODELS.get(task.model);
  if (!model) throw new ApiError('invalidModel', `Unknown model '${task.model}'.`, { parameter: 'model' });
  if (!firstReference) return model.defaultSize;
  return model.sizeForAspect(firstReference.encoded.width / firstReference.encoded.height);
}

/** Whether a run must stop without recording anything more: shut down, cancelled, or fenced out by a newer claim. */
function mustStop(signal: AbortSignal, thrown: unknown): boolean {
  return signal.aborted || thrown instanceof ClaimLostError;
}

/**
 * Runs one accepted task to the end: claims it (a fencing token that every later write
 * carries, so a stalled run that wakes up after another worker took the task over cannot
 * overwrite its results), resolves its inputs, makes every image still pending (so a task
 * interrupted by a crash only makes what is missing), stores and delivers each image as soon as
 * it exists, and records the outcome. Aborting `signal` (shutdown) or losing the claim rejects,
 * leaving the task unfinished in the store for the next attempt. A cancel (`cancelTask`, from any
 * process) stops the run quietly: the cancel itself settles the task. The task's deadline stops
 * it too, and what is still pending fails with `timeoutDeadline`.
 *
 * Fair sharing counts images (docs/tenancy.md): before each engine call after the first, the run
 * asks its queue `turn` whether another key's work is due first, and if so hands its slot back
 * once the calls it started have finished: the task goes back to `queued` and the run resolves
 * with what it did, for the queue to resume the rest at its fair place.
 */
export async function runTask(deps: TaskServiceDeps, taskUUID: string, signal: AbortSignal, turn?: JobTurn): Promise<void | JobYield> {
  const started = deps.clock.now();
  // The claim answers the record, and the generations are read beside it: one round trip to start.
  const [claimed, firstRead] = await Promise.all([deps.store.claimTask(taskUUID, started), deps.store.listGenerations(taskUUID)]);
  if (!claimed) {
    // Ended meanwhile (cancelled, timed out, or by a run that crashed after ending it): its
    // images are charged if a run died before charging them, then what it held for admission and
    // for its key goes back. A task that is not stored at all holds nothing of this job's (a
    // submission that failed gave back what it took; the sweeper reconciles the rest).
    const ended = await deps.store.getTask(taskUUID);
    if (!ended) return;
    if (deps.tenancy) {
      await chargeMissing({ deps, record: ended, task: JSON.parse(ended.request) as InferenceTask }).catch((error: unknown) =>
        deps.logger.error({ taskUUID, err: error }, 'charging the task’s images failed'),
      );
    }
    await deps.admission.release(taskUUID);
    await deps.tenancy?.release(taskUUID);
    return;
  }
  const { task: record, fence } = claimed;
  const task = JSON.parse(record.request) as InferenceTask;
  taskUUID = record.taskUUID;
  const log = deps.logger.child({ taskUUID });
  log.info({ claim: fence }, 'task claimed');
  const progress = new ProgressReporter(deps.events, record.taskUUID, task.progress === true);
  // A first run's generations were read beside its claim: nothing but a run could have settled
  // one, and there was none. A later run reads them after its claim, which fences the runs
  // before it out, so it sees everything they settled. So does a first run whose side read does
  // not hold the task's images (it ran before a task deleted and stored again was inserted).
  const [generations] = await Promise.all([
    fence === 1 && firstRead.length === record.imageCount ? firstRead : deps.store.listGenerations(taskUUID),
    // Its images count as running for the key's limits (docs/tenancy.md).
    task.keyHold && deps.tenancy?.started(taskUUID).catch((error: unknown) => log.warn({ err: error }, 'could not mark the task started for its key')),
  ]);
  const pending = generations.filter((g) => g.status === 'pending');
  // A run that resumes a task (after a yield or a crash) has no queue wait nor first result of its own to report.
  const resumed = pending.length < generations.length;
  const timer = new TaskTimer(deps.metrics, { apiKeyId: record.apiKeyId, model: task.model, engine: record.engine, acceptedAt: record.createdAt, startedAt: started, images: record.imageCount, resumed });
  // Encoding and storing run beside the engine (their own slots), so the next render starts
  // while the last image is encoded; every one of them is awaited before the task ends.
  const storing: Promise<unknown>[] = [];
  const stored = async (): Promise<void> => {
    const outcomes = await Promise.all(storing.splice(0));
    const stop = outcomes.find((outcome) => outcome !== undefined);
    if (stop !== undefined) throw stop;
  };
  let failedCount = 0;
  // Images this run started, and whether it hands its slot back before starting the rest.
  let startedImages = 0;
  let yielded = false;
  const writer: TaskWriter = { deps, record, task, fence, log, onFailed: (code) => timer.imageFailed(code), charges: { failed: false } };
  const fail = async (group: GenerationRecord | readonly GenerationRecord[], thrown: unknown): Promise<void> => {
    failedCount += await failGenerations(writer, group, thrown);
  };

  // A cancel (from any process) or the task's deadline stops the run: the engine call and the
  // input fetches get the abort. The event bus being down only delays it: a cancel claims the
  // task in the store, which fences every later write of this run out.
  const stopRun = new AbortController();
  // Aborted when one engine call stops the run (a lost claim, a shutdown): the calls beside it
  // stop too, and the run decides nothing until all of them have settled.
  const halt = new AbortController();
  const runSignal = AbortSignal.any([signal, stopRun.signal, halt.signal]);
  // Not awaited: the run starts at once (a cancel sent before the subscription is confirmed still
  // fences the run out through the store).
  const watching = deps.events
    .watch(taskUUID, (event) => {
      if (event.type === 'cancel') stopRun.abort(taskCancelled(record.taskUUID));
    })
    .catch((error: unknown) => {
      log.warn({ err: error }, 'cannot watch for a cancel; a cancel still fences this run out');
      return () => {};
    });
  const deadlineAt = task.deadlineSeconds === undefined ? undefined : record.createdAt + task.deadlineSeconds * 1000;
  const deadline = deadlineAt === undefined ? undefined : timeoutDeadline(record.taskUUID, task.deadlineSeconds!);
  const deadlineTimer = deadlineAt === undefined ? undefined : setTimeout(() => stopRun.abort(deadline), Math.max(0, deadlineAt - deps.clock.now()));
  try {
    try {
      // Queued work past its deadline never starts.
      if (deadlineAt !== undefined && deps.clock.now() >= deadlineAt) throw deadline;
      const inputs = await timer.time('inputs', deps.inputs.resolveTaskInputs(task.referenceImages, task.elements, 'inputs.referenceImages', runSignal));
      await checkInputs(deps, taskUUID, [
        ...inputs.referenceImages.map((image, i) => ({ image, parameter: `inputs.referenceImages[${i}]` })),
        ...inputs.elements.flatMap((e, i) => [
          { image: e.frontal, parameter: `inputs.elements[${i}].frontalImage` },
          ...e.views.map((image, j) => ({ image, parameter: `inputs.elements[${i}].referenceImages[${j}]` })),
        ]),
      ]);
      const size = resolveSize(task, inputs.referenceImages[0]);
      const engine = deps.engines.forModel(task.model);
      const bySlot = new Map(pending.map((g) => [g.index, g]));
      // Calls cover fixed index ranges, so a call resumed after a restart (with only its images
      // still pending) finds the checkpoint its first run saved at the range's first index.
      const byRange = new Map<number, GenerationRecord[]>();
      for (const g of pending) {
        const start = g.index - (g.index % engine.maxImagesPerCall);
        byRange.set(start, [...(byRange.get(start) ?? []), g]);
      }
      const batches = [...byRange].map(([start, generations]) => ({ start, generations }));
      const taskSeed = generations[0]?.seed ?? 1;
      const slots = stageSlots(deps, engine);
      await runLimited(batches, engine.concurrency, async ({ start, generations: batch }) => {
        if (yielded || (turn !== undefined && startedImages > 0 && (await turn.shouldYield(startedImages)))) {
          yielded = true;
          return;
        }
        startedImages += batch.length;
        const settled = new Set<number>();
        // Time spent handing images over, taken out of the render time.
        let handingOverMs = 0;
        const finish = async (image: GeneratedImage): Promise<void> => {
          // A run that is stopping (cancelled, fenced out, shutting down) stores nothing more: an
          // image drawn after the stop would only be refused (or remade by the next run).
          if (runSignal.aborted) return;
          const generation = bySlot.get(image.index);
          if (!generation || settled.has(image.index)) return;
          settled.add(image.index);
          progress.report(image.index, 'encoding');
          const handOver = performance.now();
          // Waiting for an encode slot holds the engine call (and its render slot): the raw images
          // alive are bounded by the two stages' slots, whatever the task's numberResults.
          const release = await slots.encode.acquire(pixelsOf(image, FORMAT[task.outputFormat]));
          handingOverMs += performance.now() - handOver;
          storing.push(
            (async () => {
              try {
                await finishImage(deps, record, task, generation, image, engine, fence, timer, progress, writer.charges!);
              } catch (thrown) {
                if (mustStop(runSignal, thrown)) throw thrown;
                await fail(generation, thrown);
              } finally {
                release();
              }
            })().then(
              () => undefined,
              (thrown: unknown) => thrown ?? new Error('image storing failed'),
            ),
          );
        };
        const releaseRender = await slots.render.acquire();
        for (const g of batch) progress.report(g.index, 'rendering');
        const renderStarted = performance.now();
        try {
          const result = await engine.generate({
            model: task.model,
            prompt: task.positivePrompt,
            width: size.width,
            height: size.height,
            images: batch.map(
              (g): ImageSlot => ({ index: g.index, seed: g.seed, ...(g.seriesIndex === null ? {} : { seriesIndex: g.seriesIndex }) }),
            ),
            taskSeed,
            ...(task.seriesAmount === undefined ? {} : { seriesAmount: task.seriesAmount }),
            referenceImages: inputs.referenceImages,
            elements: inputs.elements,
            output: { format: FORMAT[task.outputFormat], quality: task.outputQuality },
            options: {},
            signal: runSignal,
            checkpoint: {
              load: () => deps.store.loadEngineState(taskUUID, start),
              save: (value) => deps.store.saveEngineState(taskUUID, start, value, fence),
            },
            includeCost: task.includeCost,
            onImage: finish,
          });
          // An engine that returned although the run was stopped: nothing of it is settled (its
          // images were not taken above, and must not count as missing either).
          runSignal.throwIfAborted();
          timer.stage('render', performance.now() - renderStarted - handingOverMs);
          releaseRender();
          for (const warning of result.warnings) log.warn({ engine: engine.name }, warning);
          for (const image of result.images) await finish(image);
          for (const g of batch) {
            if (!settled.has(g.index)) await fail(g, new Error(`engine ${engine.name} returned no image for slot ${g.index}`));
          }
        } catch (thrown) {
          releaseRender();
          if (mustStop(runSignal, thrown)) throw thrown;
          await fail(batch.filter((g) => !settled.has(g.index)), thrown);
        }
      }, (thrown) => halt.abort(thrown));
      await stored();
    } catch (thrown) {
      // Images already handed to the encode stage finish (or stop) before anything else is decided.
      const stop = await stored().then(
        () => undefined,
        (error: unknown) => error,
      );
      if (stop !== undefined) thrown = stop;
      // Whatever ends the run here, it is not handing its slot back.
      yielded = false;
      if (stopRun.signal.aborted && !signal.aborted) {
        const reason = stopRun.signal.reason as ApiError;
        if (reason.code === 'taskCancelled') {
          // The cancel has claimed the task and settled what was pending.
          log.info('task cancelled: its run stopped');
          return;
        }
        // The deadline passed: what is still pending fails with it, once for all.
        thrown = reason;
      } else if (mustStop(signal, thrown)) {
        log.info({ reason: thrown instanceof ClaimLostError ? 'claim lost' : 'aborted' }, 'task interrupted; it resumes on its next attempt');
        throw thrown;
      }
      // A task-wide failure (an input that cannot be resolved): every image still pending fails with it.
      const done = new Set((await deps.store.listGenerations(taskUUID)).filter((g) => g.status !== 'pending').map((g) => g.index));
      await fail(pending.filter((g) => !done.has(g.index)), thrown);
    }
    signal.throwIfAborted();
    if (yielded) {
      // Fenced: a cancel or another worker that took the task meanwhile keeps it.
      await deps.store.setTaskStatus(taskUUID, 'queued', deps.clock.now(), undefined, fence);
      // Its images left wait again, and count as queued for its key's limits until the next run
      // marks them started (docs/tenancy.md).
      if (task.keyHold) await deps.tenancy?.requeued(taskUUID).catch((error: unknown) => log.warn({ err: error }, 'could not mark the task queued again for its key'));
      log.info({ images: startedImages, left: pending.length - startedImages }, "task yielded its worker slot to another key's work");
      return { yielded: startedImages };
    }
    // Failed unless an image succeeded, in this run or in one before it (a resumed run made only
    // what was left, possibly nothing, so its own count says nothing of the rest).
    const allFailed =
      failedCount === pending.length &&
      (pending.length === record.imageCount ? failedCount > 0 : !(await deps.store.listGenerations(taskUUID)).some((g) => g.status === 'success'));
    progress.close();
    const ended = await endTask(writer, allFailed);
    timer.finish(log, ended, { images: pending.length, failed: failedCount, allFailed });
  } finally {
    (await watching)();
    progress.close();
    clearTimeout(deadlineTimer);
  }
}

/** What writes a task's outcome: the run that claimed it, or a cancel (which claims it too). */
export interface TaskWriter {
  readonly deps: TaskServiceDeps;
  readonly record: TaskRecord;
  readonly task: InferenceTask;
  /** The claim every write carries (a newer claim fences these writes out). */
  readonly fence: number;
  readonly log: Logger;
  /** Called once per image that failed (the run's timer). */
  onFailed?(code: string): void;
  /** Set when charging an image failed in this run: the task's end charges what is missing. */
  readonly charges?: { failed: boolean };
}

/**
 * Ends generations with an error; answers how many. One image's failure is one error item; a
 * failure that ends several at once (an input that cannot be resolved, an engine call that
 * failed, a cancel or a deadline) is one error item for all of them, carrying `imageCount`:
 * one event, one webhook, and one entry in getResponse (docs/protocol.md: failures that end
 * several images are reported once).
 */
export async function failGenerations(
  writer: TaskWriter,
  group: GenerationRecord | readonly GenerationRecord[],
  thrown: unknown,
): Promise<number> {
  const { deps, record, task, fence, log } = writer;
  const taskUUID = record.taskUUID;
  const ended = Array.isArray(group) ? (group as readonly GenerationRecord[]) : [group as GenerationRecord];
  if (ended.length === 0) return 0;
  let error = toApiError(thrown).forTask(taskUUID, 'imageInference');
  if (Array.isArray(group)) error = new ApiError(error.code, error.message, { ...error.details, extra: { ...error.details.extra, imageCount: ended.length } });
  if (error.code === 'internalServerError') log.error({ err: error.details.cause ?? thrown }, 'generation failed');
  for (let i = 0; i < ended.length; i++) {
    writer.onFailed?.(error.code);
    deps.metrics?.images.inc({ model: task.model, outcome: error.code });
  }
  const body = error.toJSON();
  const target = { taskUUID, apiKeyId: record.apiKeyId, now: deps.clock.now() };
  const webhooks = task.webhookURL === undefined ? [] : [webhookForError(target, task.webhookURL, body)];
  // Stored on each generation; `group` (not sent) lets getResponse answer a group failure once.
  const storedError = JSON.stringify(Array.isArray(group) ? { ...body, group: ended[0]!.index } : body);
  for (const [i, generation] of ended.entries()) {
    const update = { status: 'error', error: storedError, finishedAt: target.now } as const;
    await deps.store.settleGeneration(taskUUID, generation.index, update, i === 0 ? webhooks : [], fence);
  }
  // A failed or cancelled image is never charged: its held price goes back to the key's budget.
  if (task.keyHold) await deps.tenancy?.refund(taskUUID, ended.length).catch((error: unknown) => log.warn({ err: error }, 'refund failed; the hold is released when the task ends'));
  await deps.events.emit({ type: 'error', taskUUID, error });
  await deps.delivery?.dispatch(webhooks);
  return ended.length;
}

/**
 * Charges every stored image of the task that has no ledger row yet (charging is idempotent per
 * image). Every path that ends a task or gives its key's hold back runs it first: a run that
 * stored an image and died before charging it leaves that to whoever ends the task.
 */
export async function chargeMissing({ deps, record, task }: Pick<TaskWriter, 'deps' | 'record' | 'task'>): Promise<void> {
  for (const g of await deps.store.listGenerations(record.taskUUID)) {
    if (g.status !== 'success' || g.imageUUID === null) continue;
    const image = await deps.store.getImage(g.imageUUID);
    await deps.tenancy?.charge({
      apiKeyId: record.apiKeyId,
      taskUUID: record.taskUUID,
      imageIndex: g.index,
      imageUUID: g.imageUUID,
      model: task.model,
      engine: record.engine,
      width: image?.width ?? task.width ?? 0,
      height: image?.height ?? task.height ?? 0,
      priceMicros: toMicros(g.cost ?? 0),
      upstreamMicros: g.upstreamCost == null ? null : toMicros(g.upstreamCost),
      at: g.finishedAt ?? deps.clock.now(),
    }, task.keyHold === true);
  }
}

/** Records a task's end: its status and retention, its admission reservation back, the `end` event. Answers the end time. */
export async function endTask(writer: TaskWriter, allFailed: boolean): Promise<number> {
  const { deps, record, fence, log } = writer;
  const ended = deps.clock.now();
  // A run after a crash (a newer claim), or one whose charge failed, may have images stored but
  // not charged (settling and charging are two steps): charge them before the task ends, since
  // a run that finds the task ended charges nothing.
  if (deps.tenancy && (fence > 1 || writer.charges?.failed)) {
    await chargeMissing(writer).catch((error: unknown) => log.error({ err: error }, 'charging the task’s images failed'));
  }
  // A task answered by URL has no inline images to date with it.
  await deps.store.setTaskStatus(record.taskUUID, allFailed ? 'failed' : 'done', ended, ended + deps.retentionMs, fence, writer.task.outputType !== 'URL');
  await deps.admission.release(record.taskUUID).catch((error: unknown) => log.warn({ err: error }, 'admission release failed; the sweeper reconciles it'));
  if (writer.task.keyHold) await deps.tenancy?.release(record.taskUUID).catch((error: unknown) => log.warn({ err: error }, 'tenancy release failed; the sweeper reconciles it'));
  await deps.events.emit({ type: 'end', taskUUID: record.taskUUID });
  return ended;
}

/** Operator option: classify reference images too; under the block policy a flagged one fails the task. */
async function checkInputs(
  deps: TaskServiceDeps,
  taskUUID: string,
  images: readonly { image: InputImage; parameter: string }[],
): Promise<void> {
  const safety = deps.safety;
  if (!safety?.checkInputs) return;
  for (const { image, parameter } of images) {
    const verdict = await safety.classify(image.pixels, { taskUUID, what: parameter });
    if (verdict.nsfw && safety.policy === 'block') {
      throw new ApiError('nsfwContentDetected', 'An input image was refused by the safety check.', { parameter });
    }
  }
}

async function finishImage(
  deps: TaskServiceDeps,
  record: TaskRecord,
  task: InferenceTask,
  generation: GenerationRecord,
  image: GeneratedImage,
  engine: ImageEngine,
  fence: number,
  timer: TaskTimer,
  progress: ProgressReporter,
  charges: { failed: boolean },
): Promise<void> {
  const format = FORMAT[task.outputFormat];
  const source = image.pixels ?? image.encoded;
  if (!source) throw new Error(`engine ${engine.name} returned an image without pixels or bytes`);
  const stage = (name: 'encode' | 'store' | 'deliver', since: number): number => {
    const now = performance.now();
    timer.stage(name, now - since);
    return now;
  };
  let mark = performance.now();
  // The safety check reads the same pixels as the encoder: the two run side by side.
  const [encoded, verdict] = await Promise.all([
    image.pixels ? encodeRaw(image.pixels, format, task.outputQuality, deps.encoding) : ensureFormat(image.encoded!, format, task.outputQuality, deps.encoding),
    task.safetyMode !== 'none' && deps.safety
      ? timer.time('safety', deps.safety.classify(source, { taskUUID: record.taskUUID, what: `image ${generation.index}` }))
      : undefined,
  ]);
  mark = stage('encode', mark);
  releasePixels(image);
  const nsfw = verdict?.nsfw;
  if (nsfw && deps.safety?.policy === 'block') {
    throw new ApiError('nsfwContentDetected', 'The generated image was withheld because the safety check flagged it.', {
      parameter: 'safety',
      extra: { seed: image.seed },
    });
  }

  const now = deps.clock.now();
  const imageUUID = newUuid();
  const objectKey = `${imageUUID}.${format}`;
  const isUrl = task.outputType === 'URL';
  progress.report(generation.index, 'storing');
  // The image's row and the bytes are written side by side (the row's statement goes out first,
  // before the object store's client takes the thread): nothing reads the row before the
  // generation is settled below, after both.
  const row = deps.store.insertImage({
    imageUUID,
    kind: 'generated',
    taskUUID: record.taskUUID,
    apiKeyId: record.apiKeyId,
    format,
    width: encoded.width,
    height: encoded.height,
    bytes: encoded.bytes.byteLength,
    objectKey,
    createdAt: now,
    // URL outputs live `ttl` seconds; inline outputs as long as their task record (set when it ends).
    expiresAt: isUrl ? now + task.ttl * 1000 : null,
    servable: isUrl,
  });
  const put = deps.objects.put(objectKey, encoded.bytes);
  const [rowWritten, bytesWritten] = await Promise.allSettled([row, put]);
  if (rowWritten.status === 'rejected' || bytesWritten.status === 'rejected') {
    // One without the other is an orphan the sweeper would never find (bytes without a row) or
    // a row pointing at nothing: both go (best effort; deleting what is not there is no error, and
    // a write reported failed may still have landed) before the failure counts.
    await Promise.all([deps.store.deleteImage(imageUUID), deps.objects.delete(objectKey)]).catch((failure: unknown) => deps.logger.warn({ taskUUID: record.taskUUID, imageUUID, err: failure }, 'could not remove half of an image that failed to store'));
    throw rowWritten.status === 'rejected' ? rowWritten.reason : (bytesWritten as PromiseRejectedResult).reason;
  }
  const model = MODELS.get(task.model);
  // Whole micro-dollars, so the ledger's integer totals equal what the clients are told (docs/tenancy.md).
  const cost = fromMicros(toMicros(image.cost ?? model?.price(encoded.width, encoded.height) ?? 0));
  const item = buildResultItem({
    taskUUID: record.taskUUID,
    imageUUID,
    seed: image.seed,
    outputType: task.outputType,
    outputFormat: task.outputFormat,
    ...(isUrl ? { imageURL: deps.imageUrl(objectKey, task.publicBase) } : { bytes: encoded.bytes }),
    ...(task.includeCost ? { cost } : {}),
    ...(nsfw === undefined ? {} : { nsfw }),
    ...(generation.seriesIndex === null ? {} : { seriesIndex: generation.seriesIndex }),
  });
  const target = { taskUUID: record.taskUUID, apiKeyId: record.apiKeyId, now };
  const deliveries = [
    ...(task.webhookURL === undefined ? [] : [webhookForItem(target, task.webhookURL, imageUUID, item)]),
    ...(task.uploadEndpoint === undefined ? [] : [uploadOf(target, task.uploadEndpoint, imageUUID, objectKey, task.webhookURL ?? null)]),
  ];
  try {
    await deps.store.settleGeneration(
      record.taskUUID,
      generation.index,
      { status: 'success', imageUUID, cost, ...(image.cost === undefined ? {} : { upstreamCost: image.cost }), seed: image.seed, ...(nsfw === undefined ? {} : { nsfw }), finishedAt: now },
      deliveries,
      fence,
    );
  } catch (error) {
    // Fenced out (a cancel, or another run took the task): this image belongs to no generation,
    // and an inline one would have no expiry, so its row and bytes go now (best effort; a URL
    // image would expire anyway).
    if (error instanceof ClaimLostError) {
      await Promise.all([deps.store.deleteImage(imageUUID), deps.objects.delete(objectKey)]).catch((failure: unknown) =>
        deps.logger.warn({ taskUUID: record.taskUUID, imageUUID, err: failure }, 'could not delete an image made by a run that was fenced out'),
      );
    }
    throw error;
  }
  mark = stage('store', mark);
  deps.metrics?.images.inc({ model: task.model, outcome: 'success' });
  progress.resultFor(generation.index);
  await deps.events.emit({ type: 'result', taskUUID: record.taskUUID, item });
  stage('deliver', mark);
  // Charged once stored (a run fenced out above charges nothing). The price is held since the
  // task was accepted, so charging after the result goes out never lets a key overspend; a crash
  // in between is charged by the run that resumes the task (endTask), so no image is free.
  await deps.tenancy?.charge({
    apiKeyId: record.apiKeyId,
    taskUUID: record.taskUUID,
    imageIndex: generation.index,
    imageUUID,
    model: task.model,
    engine: record.engine,
    width: encoded.width,
    height: encoded.height,
    priceMicros: toMicros(cost),
    upstreamMicros: image.cost === undefined ? null : toMicros(image.cost),
    at: now,
  }, task.keyHold === true).catch((error: unknown) => {
    // Charged again (idempotently) when the task ends, so a delivered image is never free.
    charges.failed = true;
    deps.logger.error({ taskUUID: record.taskUUID, err: error }, 'charging an image failed; retried when the task ends');
  });
  if (task.uploadEndpoint !== undefined) progress.report(generation.index, 'uploading');
  timer.imageDone(cost, deps.clock.now());
  // Webhooks and uploads are durable deliveries, retried on their schedule (past a restart too):
  // neither the task nor its engine slot waits for them. An upload that fails for good is told
  // to the webhook and getResponse by the delivery service, and to live watchers here.
  void (async () => {
    const failedUploads = (await deps.delivery?.dispatch(deliveries)) ?? [];
    for (const upload of failedUploads) {
      await deps.events.emit({ type: 'notice', taskUUID: record.taskUUID, error: uploadFailed(record.taskUUID, imageUUID, upload.lastError) });
    }
  })().catch((error: unknown) => deps.logger.warn({ err: error, taskUUID: record.taskUUID }, 'delivery follow-up failed'));
}

