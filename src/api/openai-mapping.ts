/**
 * The OpenAI Images API as a second front door: its request schemas (also published in the
 * OpenAPI document), the mapping of a request onto a Runware `imageInference` task (which then
 * goes through the protocol layer's validation like any other), and Kiln errors in OpenAI's shape.
 */
import { z } from 'zod';
import type { ApiError } from '../errors/index.ts';
import { newUuid } from '../shared/ids.ts';

export const DEFAULT_OPENAI_MODEL = 'klingai:kling-image@o3';

const common = {
  model: z.string().min(1).optional().describe(`The model; default ${DEFAULT_OPENAI_MODEL}.`),
  prompt: z.string().describe('The prompt (positivePrompt).'),
  n: z.coerce.number().int().min(1).max(20).optional().describe('Number of images, 1 to 20 (numberResults). Default 1.'),
  size: z
    .string()
    .optional()
    .describe('"WxH" (e.g. "1360x768") or "auto". A size the model does not support is refused with the list of those it does.'),
  response_format: z.enum(['url', 'b64_json']).optional().describe('Default url.'),
  output_format: z.enum(['png', 'jpeg', 'webp']).optional().describe('Default png.'),
  output_compression: z.coerce.number().int().min(0).max(100).optional().describe('0-100, mapped to outputQuality 20-99 (jpeg, webp).'),
  user: z.string().max(256).optional().describe('Accepted and logged.'),
  quality: z.enum(['auto', 'low', 'medium', 'high', 'standard', 'hd']).optional().describe('Accepted and ignored.'),
  style: z.enum(['vivid', 'natural']).optional().describe('Accepted and ignored.'),
  background: z.enum(['auto', 'opaque']).optional().describe('Accepted; transparent backgrounds are not supported.'),
  moderation: z.enum(['auto', 'low']).optional().describe('"auto" runs Kiln\'s safety check on every image; "low" or absent does not.'),
  seed: z.coerce.number().int().min(1).max(2 ** 31 - 1).optional().describe('Kiln extension: the seed of the first image.'),
};

export const generationRequestSchema = z.object(common).strict().describe('OpenAI images.generate');

export const editRequestSchema = z
  .object({
    ...common,
    image: z
      .array(z.string().describe('binary'))
      .optional()
      .describe('One or more image files, sent as `image` or `image[]`; they become reference images (1 to 10).'),
    input_fidelity: z.enum(['low', 'high']).optional().describe('Accepted and ignored.'),
  })
  .strict()
  .describe('OpenAI images.edit (multipart/form-data)');

export type GenerationRequest = z.infer<typeof generationRequestSchema>;

export const imagesResponseSchema = z.object({
  created: z.int().describe('Unix seconds.'),
  data: z.array(
    z.object({
      url: z.url().optional(),
      b64_json: z.string().optional(),
      revised_prompt: z.string().optional(),
    }),
  ),
  output_format: z.enum(['png', 'jpeg', 'webp']),
  size: z.string().optional(),
});

export const modelObjectSchema = z.object({
  id: z.string(),
  object: z.literal('model'),
  created: z.int(),
  owned_by: z.string(),
});
export const modelListSchema = z.object({ object: z.literal('list'), data: z.array(modelObjectSchema) });

export const openAiErrorSchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
  }),
});

/** An error in OpenAI's shape, with the status the `openai` client maps to its error classes. */
export class OpenAiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
    /** Seconds for `Retry-After` (throttled keys). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  toJSON(): z.infer<typeof openAiErrorSchema> {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Runware field names → the OpenAI parameter that carries them. */
const PARAM_OF: Readonly<Record<string, string>> = {
  positivePrompt: 'prompt',
  width: 'size',
  height: 'size',
  numberResults: 'n',
  outputQuality: 'output_compression',
  outputFormat: 'output_format',
  model: 'model',
  seed: 'seed',
};

const CODE_OF: Partial<Record<string, string>> = {
  invalidApiKey: 'invalid_api_key',
  unsupportedParameter: 'unknown_parameter',
  missingParameter: 'missing_required_parameter',
  queueFull: 'rate_limit_exceeded',
  tooManyRequests: 'rate_limit_exceeded',
  rateLimitExceeded: 'rate_limit_exceeded',
  insufficientCredits: 'insufficient_quota',
  nsfwContentDetected: 'moderation_blocked',
  invalidModel: 'model_not_found',
};

/** A Kiln (Runware) error as the OpenAI client expects it. */
export function fromApiError(error: ApiError, requestedSize?: string): OpenAiError {
  const parameter = Array.isArray(error.details.parameter) ? error.details.parameter[0] : error.details.parameter;
  const base = typeof parameter === 'string' ? parameter.replace(/\[\d+\].*$/, '') : undefined;
  const param =
    base === undefined ? null : base === 'inputs.referenceImages' || base === 'referenceImages' ? 'image' : (PARAM_OF[base] ?? base);
  let message = error.message;
  if (error.code === 'unsupportedDimensions' && requestedSize !== undefined) {
    message = `Invalid value for 'size': '${requestedSize}' is not supported by this model. ${error.message.replace(/^.*?selected model\.\s*/, '')}`;
  } else if (param !== null && typeof parameter === 'string' && param !== parameter) {
    message = message.replace(`'${parameter}'`, `'${param}'`);
  }
  const status = error.status;
  const code = CODE_OF[error.code] ?? (status === 400 ? 'invalid_value' : error.code);
  const retryAfter = error.details.extra?.retryAfter;
  return new OpenAiError(
    status,
    message,
    error.code === 'invalidApiKey' ? null : param,
    code,
    undefined,
    typeof retryAfter === 'number' ? retryAfter : undefined,
  );
}

/** The value at `path` in a parsed request (undefined where any step is missing). */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const step of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[step];
  }
  return value;
}

/** The first zod issue of an OpenAI request (`input`, as the client sent it) as a 400. */
export function fromZodError(error: z.ZodError, input: unknown): OpenAiError {
  const issue = error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    return new OpenAiError(400, `Unknown parameter: '${key}'.`, key, 'unknown_parameter');
  }
  const param = issue?.path.map(String).join('.') ?? null;
  // zod leaves the offending value out of its issues: a field is missing only when the request lacks it.
  const missing = issue?.code === 'invalid_type' && valueAt(input, issue.path) === undefined;
  return missing
    ? new OpenAiError(400, `Missing required parameter: '${param}'.`, param, 'missing_required_parameter')
    : new OpenAiError(400, `Invalid value for '${param}': ${issue?.message ?? 'invalid'}.`, param, 'invalid_value');
}

const FORMAT = { png: 'PNG', jpeg: 'JPG', webp: 'WEBP' } as const;

/**
 * The Runware task for an OpenAI request; validation of the result (model, size, prompt, counts,
 * references) is left to the protocol layer, so both front doors enforce the same rules.
 */
export function toInferenceTask(request: GenerationRequest, referenceImages: readonly string[] = []): Record<string, unknown> {
  const task: Record<string, unknown> = {
    taskType: 'imageInference',
    taskUUID: newUuid(),
    model: request.model ?? DEFAULT_OPENAI_MODEL,
    positivePrompt: request.prompt,
    numberResults: request.n ?? 1,
    outputType: request.response_format === 'b64_json' ? 'base64Data' : 'URL',
    outputFormat: FORMAT[request.output_format ?? 'png'],
    includeCost: true,
  };
  const size = parseSize(request.size);
  if (size) {
    task.width = size.width;
    task.height = size.height;
  }
  if (request.output_compression !== undefined) task.outputQuality = Math.min(99, Math.max(20, request.output_compression));
  if (request.moderation === 'auto') task.safety = { checkContent: true, mode: 'fast' };
  if (request.seed !== undefined) task.seed = request.seed;
  if (referenceImages.length > 0) task.inputs = { referenceImages };
  return task;
}

/** `"WxH"` → numbers; `undefined` for absent or `"auto"`; throws a 400 for anything else. */
export function parseSize(size: string | undefined): { width: number; height: number } | undefined {
  if (size === undefined || size === 'auto') return undefined;
  const match = /^(\d{1,5})x(\d{1,5})$/.exec(size);
  if (!match) throw new OpenAiError(400, `Invalid value for 'size': '${size.slice(0, 40)}'. It must be "WIDTHxHEIGHT" (e.g. "1024x1024") or "auto".`, 'size', 'invalid_value');
  return { width: Number(match[1]), height: Number(match[2]) };
}
