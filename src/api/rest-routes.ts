import { Readable, Transform } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Limits } from '../config/config.ts';
import {
  ApiError,
  invalidApiKey,
  jsonTooDeep,
  preAuthTooLarge,
  responseTooLarge,
  toApiError,
  tooManyAuthFailures,
  tooManyImages,
} from '../errors/index.ts';
import type { AuthThrottle } from '../events/auth-throttle.ts';
import { isPlainObject } from '../protocol/field-rules.ts';
import { parseEnvelope } from '../protocol/validate-task.ts';
import { newUuid } from '../shared/ids.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import type { Principal } from '../tasks/task-service.ts';
import { nestsDeeperThan } from './json-depth.ts';
import { whileClientWaits } from './client-wait.ts';
import { publicBaseOf } from './public-base.ts';
import { dedupeGetResponse, requestedMegapixels } from './request-limits.ts';
import type { ReplySink, TaskDispatcher } from './task-dispatcher.ts';

export interface RestOptions {
  readonly dispatcher: TaskDispatcher;
  readonly apiKeys: ApiKeys;
  readonly syncTimeoutMs: number;
  /** Aborted at shutdown: sync waits end with a retryable error. */
  readonly shutdown: AbortSignal;
  /** Engine names for `X-Kiln-Engine`: of a model, and the default. */
  engineOf(model: unknown): string | undefined;
  readonly defaultEngine: string;
  readonly limits: Limits;
  readonly authThrottle: AuthThrottle;
  readonly logger: Logger;
}

/** Runware's error envelope, with the `data: []` that live error bodies carry. */
export function sendErrors(reply: FastifyReply, errors: readonly ApiError[]): FastifyReply {
  const status = errors[0]?.status ?? 500;
  return reply.code(status).send({ data: [], errors: errors.map((e) => e.toJSON()) });
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1]?.trim();
}

/** The caller a request's `Authorization` header proved, set before its body is read. */
const principals = new WeakMap<FastifyRequest, Principal>();

/** Answers a throttled address: 429 with `Retry-After`, the key unchecked. */
function sendThrottled(reply: FastifyReply, retryAfterMs: number): FastifyReply {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return sendErrors(reply.header('Retry-After', String(seconds)), [tooManyAuthFailures(seconds)]);
}

/** Ends the connection after an answer sent before the body was read, so the body is never read. */
function closeAfter(reply: FastifyReply): FastifyReply {
  return reply.header('Connection', 'close');
}

/** A stream that fails once more than `limit` bytes went through it. */
function capped(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > limit) done(preAuthTooLarge(limit));
      else done(null, chunk);
    },
  });
}

/** Replies up to this size go out as one buffer; larger ones are streamed item by item. */
const STREAM_REPLY_BYTES = 1024 * 1024;

/**
 * Sends `{"data": [...], "errors": [...]}` from items already serialized. A large reply is written
 * as a stream of its items (with backpressure, and a known `Content-Length`), so the server never
 * holds a second, concatenated copy of a reply of many base64 images.
 */
function sendReply(reply: FastifyReply, status: number, data: string[], errors: readonly ApiError[]): FastifyReply {
  const head = '{"data":[';
  const tail = errors.length === 0 ? ']}' : `],"errors":${JSON.stringify(errors.map((e) => e.toJSON()))}}`;
  reply.code(status).type('application/json; charset=utf-8');
  const length =
    Buffer.byteLength(head) + Buffer.byteLength(tail) + Math.max(0, data.length - 1) + data.reduce((sum, text) => sum + Buffer.byteLength(text), 0);
  if (length <= STREAM_REPLY_BYTES) return reply.send(head + data.join(',') + tail);
  function* chunks(): Generator<Buffer> {
    yield Buffer.from(head);
    for (let i = 0; i < data.length; i += 1) {
      const text = data[i]!;
      // Each item is let go once it is on its way: memory falls as the reply drains.
      data[i] = '';
      yield Buffer.from(i === 0 ? text : `,${text}`);
    }
    yield Buffer.from(tail);
  }
  return reply.header('Content-Length', String(length)).send(Readable.from(chunks(), { objectMode: false }));
}

/** `?dryRun=1` (or `true`) on the REST URL, as on the WebSocket URL. */
function isDryRun(query: unknown): boolean {
  const value = isPlainObject(query) ? query.dryRun : undefined;
  return value === '1' || value === 'true';
}

/** `POST /v1` (and `/v1/`): a JSON array of tasks in, `{data, errors}` out. */
export function registerRestRoutes(app: FastifyInstance, options: RestOptions): void {
  const { limits, authThrottle } = options;

  // Before the body is read: a throttled address is refused, a key in the header is checked,
  // and a caller without one may send only a small body (which can hold an authentication task).
  const onRequest = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const blocked = await authThrottle.blockedFor(request.ip);
    if (blocked > 0) return sendThrottled(closeAfter(reply), blocked);
    const key = bearer(request);
    if (key !== undefined) {
      const principal = await options.apiKeys.verify(key);
      if (!principal) {
        await authThrottle.fail(request.ip);
        return sendErrors(closeAfter(reply), [invalidApiKey()]);
      }
      principals.set(request, principal);
      return undefined;
    }
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > limits.preAuthMaxBytes) return sendErrors(closeAfter(reply), [preAuthTooLarge(limits.preAuthMaxBytes)]);
    return undefined;
  };
  // A chunked body without a length is cut off as it streams past the pre-auth cap.
  const preParsing = async (request: FastifyRequest, _reply: FastifyReply, payload: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> => {
    if (principals.has(request)) return payload;
    const limited = capped(limits.preAuthMaxBytes);
    payload.on('error', (error) => limited.destroy(error));
    return payload.pipe(limited);
  };

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const body = typeof request.body === 'string' ? request.body : '';
    reply.header('X-Kiln-Engine', options.defaultEngine);
    if (nestsDeeperThan(body, limits.maxJsonDepth)) return sendErrors(reply, [jsonTooDeep(limits.maxJsonDepth)]);
    const envelope = parseEnvelope(body);
    if (!envelope.ok) return sendErrors(reply, [envelope.error]);
    const tasks = dedupeGetResponse(envelope.tasks);
    const engines = new Set(
      tasks.flatMap((t) => (isPlainObject(t) && t.taskType === 'imageInference' ? [options.engineOf(t.model)] : [])),
    );
    engines.delete(undefined);
    reply.header('X-Kiln-Engine', engines.size > 0 ? [...engines].join(',') : options.defaultEngine);

    let principal: Principal | undefined = principals.get(request);
    const publicBase = publicBaseOf(request);
    const first = tasks[0];
    const authFirst = isPlainObject(first) && first.taskType === 'authentication';
    if (!principal && !authFirst) return sendErrors(reply, [invalidApiKey()]);
    const megapixels = requestedMegapixels(tasks);
    if (megapixels > limits.maxRequestMegapixels) return sendErrors(reply, [tooManyImages(megapixels, limits.maxRequestMegapixels)]);

    // Items are serialized once, as they arrive, and kept as their JSON text: the reply is
    // written from these pieces (streamed when large) and never built as one string.
    const data: string[] = [];
    const errors: ApiError[] = [];
    // Bytes the reply carries so far; items past the cap are dropped and their task told why.
    let replyBytes = 0;
    let producedData = false;
    const overflowed = new Set<string>();
    const fits = (items: readonly Record<string, unknown>[]): boolean => {
      const texts = items.map((item) => JSON.stringify(item));
      const size = texts.reduce((sum, text) => sum + Buffer.byteLength(text), 0);
      if (replyBytes + size > limits.maxReplyBytes) return false;
      replyBytes += size;
      data.push(...texts);
      if (items.some((item) => item.taskType !== 'authentication')) producedData = true;
      return true;
    };
    const overflow = (item: Record<string, unknown> | undefined, taskType: string): void => {
      const taskUUID = typeof item?.taskUUID === 'string' ? item.taskUUID : undefined;
      const key = taskUUID ?? '';
      if (overflowed.has(key)) return;
      overflowed.add(key);
      errors.push(responseTooLarge(limits.maxReplyBytes, taskUUID, taskType));
    };
    // A getResponse that found its task answered, even when it reports failed images.
    let answered = false;
    const sink: ReplySink = {
      data: (item) => {
        if (!fits([item])) overflow(item, typeof item.taskType === 'string' ? item.taskType : 'imageInference');
      },
      error: (error) => errors.push(error),
      notice: (error) => errors.push(error),
      room: () => limits.maxReplyBytes - replyBytes,
      tooLarge: (taskUUID, taskType) => overflow({ taskUUID }, taskType),
      batch: (items, errs) => {
        // Answered only when its items are in the reply: one left out whole is no answer (413 alone).
        if (fits(items)) answered = true;
        else overflow(items[0], 'getResponse');
        errors.push(...errs);
      },
    };
    try {
      await whileClientWaits(reply, options.shutdown, (signal) => options.dispatcher.dispatch(
        tasks,
        {
          principal: async () => principal && { ...principal, publicBase },
          authenticate: async (task) => {
            // Several authentication tasks in one body are several guesses: each counts.
            const blocked = await authThrottle.blockedFor(request.ip);
            if (blocked > 0) {
              reply.header('Retry-After', String(Math.max(1, Math.ceil(blocked / 1000))));
              throw tooManyAuthFailures(Math.max(1, Math.ceil(blocked / 1000)));
            }
            const verified = await options.apiKeys.verify(task.apiKey);
            if (!verified) {
              await authThrottle.fail(request.ip);
              throw invalidApiKey();
            }
            principal ??= verified;
            return { taskType: 'authentication', connectionSessionUUID: task.connectionSessionUUID ?? newUuid() };
          },
          // `POST /v1?dryRun=1`: validate and price only (docs/tenancy.md).
          dryRun: isDryRun(request.query),
          endAtLastImage: true,
          syncTimeoutMs: options.syncTimeoutMs,
          signal,
        },
        sink,
      ));
    } catch (thrown) {
      errors.push(toApiError(thrown));
    }
    // During a shutdown the connection must not idle in keep-alive: the server waits for it.
    if (options.shutdown.aborted) reply.header('Connection', 'close');
    if (!principal) return sendErrors(reply, errors.length > 0 ? errors : [invalidApiKey()]);
    // A key's rate or image limit (docs/tenancy.md): the error carries the wait, the header too.
    const retryAfter = errors.map((error) => error.details.extra?.retryAfter).find((value) => typeof value === 'number');
    if (retryAfter !== undefined && !reply.hasHeader('Retry-After')) reply.header('Retry-After', String(retryAfter));
    // kiln-extensions.md: 200 when at least one task produced data, otherwise the first error's status.
    const status = errors.length === 0 || answered || producedData ? 200 : (errors[0]?.status ?? 500);
    return sendReply(reply, status, data, errors);
  };
  for (const url of ['/v1', '/v1/']) app.post(url, { onRequest, preParsing }, handler);
}
