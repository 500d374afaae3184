import { randomUUID } from 'node:crypto';
import { ApiError } from '../../errors/index.ts';
import type { Logger } from '../../shared/logger.ts';
import type { EncodedImage, GenerateCall, GenerateResult, GeneratedImage, ImageFormat } from '../spec/image-engine.ts';
import { backoffDelay, sleep } from './backoff.ts';
import { parseState, serializeState, SlotAssigner, type CallState } from './call-state.ts';
import { hasEnded, readPoll } from './poll-view.ts';
import type { RunwareSettings } from './runware-options.ts';
import { codeOf, isOperatorError, isTransientError, operatorFailure, toKilnError, unavailableFailure } from './upstream-errors.ts';
import { buildInferenceTask } from './upstream-request.ts';
import {
  abortError,
  isAbortError,
  UpstreamAuthError,
  UpstreamUnavailableError,
  type UpstreamObject,
  type UpstreamReply,
  type UpstreamTask,
  type UpstreamTransport,
} from './upstream-transport.ts';

/** What every call of one engine shares. */
export interface EngineContext {
  readonly transport: UpstreamTransport;
  readonly settings: RunwareSettings;
  readonly logger: Logger;
  /** Whether to send `seed`; turned off for good once the upstream refuses it. */
  sendSeed: boolean;
  readonly isClosed: () => boolean;
  /** Downloads images the upstream returns as URLs; without it such images fail the call. */
  readonly download: UpstreamImageDownload | undefined;
}

/**
 * Downloads an image the upstream returned as a URL. Kiln passes its guarded outbound client
 * (`net/safe-fetch`: address and port checks on every hop, timeouts, a streamed size cap), so an
 * upstream answer cannot aim the server at an internal address. May throw `ApiError`; any other
 * error counts as a retryable `providerError`.
 */
export type UpstreamImageDownload = (
  url: string,
  init: { readonly signal: AbortSignal; readonly timeoutMs: number; readonly maxBytes: number },
) => Promise<Uint8Array>;

/** How often a call may submit its task again because the upstream said it does not know it. */
const MAX_RESUBMITS = 2;

/**
 * One call through the upstream: submit once (or find the task a previous run submitted in the
 * checkpoint), then poll `getResponse` and hand over each image as it appears.
 */
export async function runUpstreamCall(context: EngineContext, call: GenerateCall): Promise<GenerateResult> {
  const signal = call.signal;
  if (signal.aborted) throw abortError();
  const stored = parseState(await call.checkpoint.load());
  const planned = call.seriesAmount ?? call.images.length;
  let state: CallState = stored ?? { version: 1, upstream: randomUUID(), expected: planned, assigned: {} };
  const log = context.logger.child({ upstreamTaskUUID: state.upstream });
  const save = async (next: CallState): Promise<void> => {
    state = next;
    await call.checkpoint.save(serializeState(next));
  };
  if (stored) {
    log.info({ resumed: true }, 'runware: polling the upstream task a previous run submitted');
  } else {
    // Saved before sending: after a crash the task is polled (or re-sent with this same taskUUID,
    // which the upstream refuses as a conflict if it already has it), never paid for twice.
    await save(state);
    state = await submit(context, call, state, save, log);
  }

  const started = Date.now();
  const expected = Math.max(state.expected, planned);
  const assigner = new SlotAssigner(call.images, state.assigned);
  const results: GeneratedImage[] = [];
  // A cancel, a deadline or a shutdown stops the polling; what the upstream had already made
  // (and charged the operator for) is reported, so the spend is never invisible.
  const onAbort = (): void => {
    const upstreamCost = results.reduce((sum, image) => sum + (image.cost ?? 0), 0);
    log.info({ bought: results.length, of: planned, upstreamCost }, 'runware: call stopped; images already made upstream');
  };
  signal.addEventListener('abort', onAbort, { once: true });
  let resubmits = 0;
  let interval = context.settings.pollIntervalMs;
  try {
    for (;;) {
      const reply = await request(context, { taskType: 'getResponse', taskUUID: state.upstream }, signal, log, (r) => {
        const fault = readPoll(r).fault;
        return fault !== undefined && isTransientError(fault);
      });
      const view = readPoll(reply);
      if (view.notFound) {
        if (resubmits++ >= MAX_RESUBMITS) throw new ApiError('providerError', 'The upstream image provider lost the task.', { retryable: true });
        log.warn({ code: codeOf(view.notFound) }, 'runware: the upstream does not know the task; sending it again with the same taskUUID');
        state = await submit(context, call, state, save, log);
        continue;
      }
      if (view.fault) throw failure(context, log, view.fault);
      let progressed = false;
      for (const item of view.successes) {
        const imageUUID = item.imageUUID as string;
        if (assigner.isSeen(imageUUID)) continue;
        const bytes = await imageBytes(context, item, signal);
        const seriesIndex = typeof item.seriesIndex === 'number' ? item.seriesIndex : undefined;
        const seed = typeof item.seed === 'number' ? item.seed : undefined;
        const placed = assigner.assign({ imageUUID, ...(seed === undefined ? {} : { seed }), ...(seriesIndex === undefined ? {} : { seriesIndex }) });
        if (!placed) continue;
        progressed = true;
        if (placed.isNew) await save({ ...state, assigned: assigner.snapshot() });
        const image: GeneratedImage = {
          index: placed.slot.index,
          seed: seed ?? placed.slot.seed,
          encoded: encodedOf(bytes, call),
          ...(typeof item.cost === 'number' ? { cost: item.cost } : {}),
        };
        results.push(image);
        await call.onImage?.(image);
      }
      if (assigner.complete) return { images: results, warnings: [] };
      if (hasEnded(view, expected)) {
        const first = view.failures[0];
        if (!first) throw new ApiError('providerError', 'The upstream task ended without making every image.', { retryable: true });
        if (!call.onImage && results.length > 0) {
          return { images: results, warnings: [`upstream failed ${view.failures.length} image(s): ${String(first.code)}`] };
        }
        throw failure(context, log, first);
      }
      if (Date.now() - started > context.settings.taskTimeoutMs) {
        throw unavailableFailure(`the task took longer than ${Math.round(context.settings.taskTimeoutMs / 1000)} s`);
      }
      interval = progressed ? context.settings.pollIntervalMs : Math.min(interval * 1.25, context.settings.maxPollIntervalMs);
      await sleep(interval, signal);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Sends the call's task under `state.upstream`; returns the state under which it was accepted. */
async function submit(
  context: EngineContext,
  call: GenerateCall,
  state: CallState,
  save: (state: CallState) => Promise<void>,
  log: Logger,
): Promise<CallState> {
  const plan = buildInferenceTask(call, state.upstream, {
    sendSeed: context.sendSeed,
    outputType: context.settings.upstreamOutputType,
  });
  if (plan.extensions.length > 0) {
    log.warn({ extensions: plan.extensions }, 'runware: passing Kiln extensions through to the upstream; the hosted Runware API may not accept them');
  }
  const reply = await request(context, plan.task, call.signal, log, (r) => r.errors.some(isTransientError));
  const error = reply.errors[0];
  // A conflict means the upstream already has this taskUUID: an earlier send of ours got through.
  if (!error || codeOf(error) === 'conflictTaskUUID') {
    log.debug({ images: plan.expected }, 'runware: upstream task accepted');
    return state;
  }
  if (codeOf(error) === 'unsupportedParameter' && error.parameter === 'seed' && 'seed' in plan.task) {
    log.warn('runware: the upstream does not take seed for this model; sending without it from now on');
    context.sendSeed = false;
    // The refused task was never created; a fresh taskUUID avoids any doubt about reusing it.
    const next: CallState = { ...state, upstream: randomUUID(), assigned: {} };
    await save(next);
    return submit(context, call, next, save, log);
  }
  throw failure(context, log, error);
}

/**
 * Sends one task with bounded retries: transport failures and replies `retryIf` accepts are
 * retried with exponential backoff and jitter; after `maxAttempts` the call fails with
 * `timeoutProvider`. A refused API key fails at once, logged as the operator's problem.
 */
async function request(
  context: EngineContext,
  task: UpstreamTask,
  signal: AbortSignal,
  log: Logger,
  retryIf: (reply: UpstreamReply) => boolean,
): Promise<UpstreamReply> {
  const { maxAttempts, requestTimeoutMs, retryBaseMs, retryMaxMs } = context.settings;
  let lastProblem = 'no answer';
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) throw abortError();
    if (context.isClosed()) throw new ApiError('serviceUnavailable', 'The server is shutting down.', { retryable: true });
    try {
      const reply = await context.transport.send(task, { timeoutMs: requestTimeoutMs, signal });
      const refused = reply.errors.find(isOperatorError);
      if (refused) throw failure(context, log, refused);
      if (!retryIf(reply)) return reply;
      lastProblem = `the upstream answered ${String(reply.errors[0]?.code ?? 'a retryable error')}`;
    } catch (error) {
      if (isAbortError(error) || signal.aborted) throw abortError();
      if (error instanceof UpstreamAuthError) throw failure(context, log, error.upstreamError);
      if (!(error instanceof UpstreamUnavailableError)) throw error;
      lastProblem = error.message;
    }
    if (attempt >= maxAttempts) {
      log.warn({ attempts: attempt, problem: lastProblem, taskType: task.taskType }, 'runware: upstream unavailable; giving up');
      throw unavailableFailure(lastProblem);
    }
    log.info({ attempt, problem: lastProblem, taskType: task.taskType }, 'runware: upstream request failed; retrying');
    await sleep(backoffDelay(attempt, retryBaseMs, retryMaxMs), signal);
  }
}

/** An upstream error as the user's error; the operator's account problems are logged loudly instead. */
function failure(context: EngineContext, log: Logger, error: UpstreamObject): ApiError {
  if (isOperatorError(error)) {
    log.error(
      { upstreamCode: codeOf(error), upstreamMessage: error.message, transport: context.transport.kind },
      codeOf(error) === 'invalidApiKey'
        ? 'runware: the upstream refused the configured API key (RUNWARE_API_KEY); every task routed to it fails until the key is fixed'
        : 'runware: the upstream account cannot pay for tasks; every task routed to it fails until credit is added',
    );
    return operatorFailure();
  }
  return toKilnError(error);
}

/** The bytes of a finished upstream image, whichever output field it came in. */
async function imageBytes(context: EngineContext, item: UpstreamObject, signal: AbortSignal): Promise<Uint8Array> {
  if (typeof item.imageBase64Data === 'string') return Buffer.from(item.imageBase64Data, 'base64');
  if (typeof item.imageDataURI === 'string') return Buffer.from(item.imageDataURI.slice(item.imageDataURI.indexOf(',') + 1), 'base64');
  if (typeof item.imageURL === 'string') {
    // upstreamOutputType URL, or an upstream that ignored outputType: fetch the bytes it points at.
    if (context.download === undefined) {
      throw new ApiError('providerError', 'The upstream returned an image URL and this engine has no downloader.', { retryable: false });
    }
    try {
      return await context.download(item.imageURL, {
        signal,
        timeoutMs: context.settings.requestTimeoutMs,
        maxBytes: MAX_UPSTREAM_IMAGE_BYTES,
      });
    } catch (error) {
      if (signal.aborted) throw abortError();
      if (error instanceof ApiError) throw error;
      context.logger.warn({ err: error }, 'runware: the upstream image could not be downloaded');
      throw new ApiError('providerError', 'The upstream image could not be downloaded.', { retryable: true });
    }
  }
  throw new ApiError('providerError', 'The upstream returned an image without data.', { retryable: true });
}

/** A 6272×2688 PNG stays far below this; anything larger is not an image we asked for. */
export const MAX_UPSTREAM_IMAGE_BYTES = 256 * 1024 * 1024;

/** The encoded image, with its real format read from the magic bytes (run-task converts if it differs). */
function encodedOf(bytes: Uint8Array, call: GenerateCall): EncodedImage {
  return { bytes, format: sniffFormat(bytes) ?? call.output.format, width: call.width, height: call.height };
}

function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (Buffer.from(bytes.subarray(0, 4)).toString('latin1') === 'RIFF' && Buffer.from(bytes.subarray(8, 12)).toString('latin1') === 'WEBP') {
    return 'webp';
  }
  return undefined;
}
