import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Limits } from '../config/config.ts';
import { ApiError, invalidApiKey, toApiError, tooManyAuthFailures, tooManyImages } from '../errors/index.ts';
import type { AuthThrottle } from '../events/auth-throttle.ts';
import { modelCatalog } from '../protocol/request-schemas.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import type { Principal } from '../tasks/task-service.ts';
import {
  OpenAiError,
  editRequestSchema,
  fromApiError,
  fromZodError,
  generationRequestSchema,
  toInferenceTask,
  type GenerationRequest,
} from './openai-mapping.ts';
import { whileClientWaits } from './client-wait.ts';
import { publicBaseOf } from './public-base.ts';
import { nestsDeeperThan } from './json-depth.ts';
import { requestedMegapixels } from './request-limits.ts';
import type { ReplySink, TaskDispatcher } from './task-dispatcher.ts';

export interface OpenAiOptions {
  readonly dispatcher: TaskDispatcher;
  readonly apiKeys: ApiKeys;
  readonly syncTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly shutdown: AbortSignal;
  readonly logger: Logger;
  /** The same request limits and failed-key throttle as `POST /v1`. */
  readonly limits: Pick<Limits, 'maxRequestMegapixels' | 'maxJsonDepth' | 'maxReplyBytes'>;
  readonly authThrottle: AuthThrottle;
}

/** At most this many files per edit; the protocol layer enforces the model's own limit (10). */
const MAX_FILES = 16;
const EDIT_FIELDS = editRequestSchema.omit({ image: true });

/**
 * The OpenAI Images API (`/v1/images/generations`, `/v1/images/edits`, `/v1/models`) in its own
 * plugin scope: multipart parsing and OpenAI-shaped errors apply here only, never to `POST /v1`.
 */
export async function openAiRoutes(app: FastifyInstance, options: OpenAiOptions): Promise<void> {
  await app.register(multipart, {
    limits: { fileSize: options.maxBodyBytes, files: MAX_FILES, fields: 32, fieldSize: 64 * 1024 },
  });
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _request, reply) => {
    if (error instanceof OpenAiError) return sendOpenAiError(reply, error);
    if (error instanceof ApiError) return sendOpenAiError(reply, fromApiError(error));
    const status = error.statusCode ?? 500;
    if (status === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendOpenAiError(reply, new OpenAiError(413, `The request is too large (at most ${MAX_FILES} files of ${options.maxBodyBytes} bytes).`, null, 'request_too_large'));
    }
    if (status < 500) return sendOpenAiError(reply, new OpenAiError(400, 'The request could not be read.', null, 'invalid_request'));
    options.logger.error({ err: error }, 'openai route failed');
    return sendOpenAiError(reply, new OpenAiError(500, 'An internal error occurred.', null, 'server_error'));
  });

  const authenticate = async (request: FastifyRequest): Promise<Principal> => {
    const blocked = await options.authThrottle.blockedFor(request.ip);
    if (blocked > 0) throw fromApiError(tooManyAuthFailures(Math.max(1, Math.ceil(blocked / 1000))));
    const match = /^Bearer\s+(.+)$/i.exec(request.headers.authorization?.trim() ?? '');
    if (!match?.[1]) {
      throw new OpenAiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", null, 'invalid_api_key');
    }
    const principal = await options.apiKeys.verify(match[1].trim());
    if (!principal) {
      await options.authThrottle.fail(request.ip);
      throw fromApiError(invalidApiKey());
    }
    return principal;
  };

  // The key is checked before any body is read, so an unauthenticated client cannot make Kiln
  // read (or buffer) a large upload; a refused request closes its connection.
  const principals = new WeakMap<FastifyRequest, Principal>();
  app.addHook('onRequest', async (request, reply) => {
    try {
      principals.set(request, await authenticate(request));
    } catch (error) {
      reply.header('Connection', 'close');
      throw error;
    }
  });
  const principalOf = (request: FastifyRequest): Principal => {
    const principal = principals.get(request);
    if (!principal) throw fromApiError(invalidApiKey());
    return principal;
  };

  const generate = async (
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    body: GenerationRequest,
    references: readonly string[],
  ): Promise<FastifyReply> => {
    if (body.user !== undefined) request.log.info({ user: body.user }, 'openai images request');
    const task = toInferenceTask(body, references);
    const megapixels = requestedMegapixels([task]);
    if (megapixels > options.limits.maxRequestMegapixels) throw fromApiError(tooManyImages(megapixels, options.limits.maxRequestMegapixels));
    const data: Record<string, unknown>[] = [];
    const errors: ApiError[] = [];
    const sink: ReplySink = {
      data: (item) => data.push(item),
      error: (error) => errors.push(error),
      notice: () => {},
      batch: (items, errs) => {
        data.push(...items);
        errors.push(...errs);
      },
    };
    // As on REST: the task keeps running if the client leaves; only the wait ends.
    try {
      await whileClientWaits(reply, options.shutdown, (signal) => options.dispatcher.dispatch(
        [task],
        {
          principal: async () => ({ ...principal, publicBase: publicBaseOf(request) }),
          authenticate: async () => {
            throw invalidApiKey();
          },
          dryRun: false,
          endAtLastImage: true,
          syncTimeoutMs: options.syncTimeoutMs,
          signal,
        },
        sink,
      ));
    } catch (thrown) {
      errors.push(toApiError(thrown));
    }
    const made = data.filter((item) => typeof item.imageUUID === 'string');
    if (made.length === 0) throw fromApiError(errors[0] ?? new ApiError('internalServerError', 'No image was produced.'), body.size);
    // The reply cap of `POST /v1` (KILN_MAX_REPLY_MB): images past it are left out (they are
    // stored, and charged, as there); the client is told how many in a header, or with a 413
    // when not even the first fits.
    const entries: ({ url: string } | { b64_json: string })[] = [];
    let replyBytes = 0;
    for (const item of made) {
      const entry = typeof item.imageURL === 'string' ? { url: item.imageURL } : { b64_json: String(item.imageBase64Data ?? '') };
      const size = 'url' in entry ? entry.url.length + 16 : entry.b64_json.length + 16;
      if (replyBytes + size > options.limits.maxReplyBytes) break;
      replyBytes += size;
      entries.push(entry);
    }
    // What the key was charged: every image made, sent or not.
    const cost = made.reduce((sum, item) => sum + (typeof item.cost === 'number' ? item.cost : 0), 0);
    reply.header('X-Kiln-Cost', String(Math.round(cost * 1e6) / 1e6));
    if (entries.length === 0) {
      throw new OpenAiError(413, `The reply would be larger than ${options.limits.maxReplyBytes} bytes. Ask for response_format "url" or fewer images.`, 'response_format', 'response_too_large');
    }
    if (entries.length < made.length) {
      reply.header('X-Kiln-Images-Left-Out', String(made.length - entries.length));
      request.log.warn({ made: made.length, sent: entries.length }, 'openai reply over the reply cap: images left out');
    }
    return reply.send({
      created: Math.floor(Date.now() / 1000),
      data: entries,
      output_format: body.output_format ?? 'png',
      ...(body.size === undefined ? {} : { size: body.size }),
    });
  };

  app.post('/v1/images/generations', async (request, reply) => {
    const principal = principalOf(request);
    let json: unknown;
    const text = typeof request.body === 'string' ? request.body : '';
    // As on `POST /v1`: a body nested too deep is refused before JSON.parse spends seconds on it.
    if (nestsDeeperThan(text, options.limits.maxJsonDepth)) {
      throw new OpenAiError(400, `The request body is nested deeper than ${options.limits.maxJsonDepth} levels.`, null, 'invalid_json');
    }
    try {
      json = JSON.parse(text);
    } catch {
      throw new OpenAiError(400, 'The request body is not valid JSON.', null, 'invalid_json');
    }
    const parsed = generationRequestSchema.safeParse(json);
    if (!parsed.success) throw fromZodError(parsed.error, json);
    return generate(request, reply, principal, parsed.data, []);
  });

  app.post('/v1/images/edits', async (request, reply) => {
    const principal = principalOf(request);
    if (!request.isMultipart()) {
      throw new OpenAiError(400, "The request must be multipart/form-data with the image files as 'image' or 'image[]'.", 'image', 'invalid_value');
    }
    const fields: Record<string, string> = {};
    const references: string[] = [];
    let total = 0;
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        const bytes = await part.toBuffer();
        // All files together stay within the body limit of the Runware API.
        total += bytes.length;
        if (total > options.maxBodyBytes) {
          throw new OpenAiError(413, `The uploaded files are larger than ${options.maxBodyBytes} bytes together.`, 'image', 'request_too_large');
        }
        if (part.fieldname === 'mask') throw new OpenAiError(400, 'Masks are not supported: Kiln edits use the images as references.', 'mask', 'unsupported_parameter');
        if (part.fieldname !== 'image' && part.fieldname !== 'image[]') {
          throw new OpenAiError(400, `Unknown file parameter: '${part.fieldname}'.`, part.fieldname, 'unknown_parameter');
        }
        // Bare base64: the inputs layer sniffs the type from the bytes, whatever the client claimed.
        references.push(bytes.toString('base64'));
      } else {
        fields[part.fieldname] = String(part.value);
      }
    }
    const parsed = EDIT_FIELDS.safeParse(fields);
    if (!parsed.success) throw fromZodError(parsed.error, fields);
    if (references.length === 0) throw new OpenAiError(400, "Missing required parameter: 'image'.", 'image', 'missing_required_parameter');
    const { input_fidelity: _ignored, ...body } = parsed.data;
    return generate(request, reply, principal, body, references);
  });

  const models = () => modelCatalog().map((model) => ({ id: model.id, object: 'model' as const, created: 1_735_689_600, owned_by: 'kiln' }));
  app.get('/v1/models', async () => {
    return { object: 'list', data: models() };
  });
  app.get('/v1/models/*', async (request) => {
    const id = decodeURIComponent((request.params as Record<string, string>)['*'] ?? '');
    const model = models().find((m) => m.id === id);
    if (!model) throw new OpenAiError(404, `The model '${id.slice(0, 100)}' does not exist.`, 'model', 'model_not_found');
    return model;
  });
}

function sendOpenAiError(reply: FastifyReply, error: OpenAiError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('Retry-After', String(error.retryAfter));
  return reply.code(error.status).send(error.toJSON());
}
