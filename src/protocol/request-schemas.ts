/**
 * zod schemas of the whole wire contract, for the OpenAPI document (`api/openapi-document.ts`).
 * The field schemas are the very ones validation uses (`RULES` of validate-inference.ts and the
 * model registry's limits); this file only assembles them into objects, so the published
 * schema cannot drift from what is enforced.
 */
import { z } from 'zod';
import { ERROR_STATUS } from '../errors/index.ts';
import { MODELS, O3_SIZES } from '../models/model-registry.ts';
import type { FieldRule } from './field-rules.ts';
import { DEFAULT_TTL_SECONDS, RULES } from './validate-inference.ts';
import { TASK_TYPES } from './validate-task.ts';

/** One served model as the playground, `/v1/models` and the OpenAPI text describe it. */
export interface ModelInfo {
  readonly id: string;
  readonly name: string;
  readonly maxResults: number;
  readonly maxInputImages: number;
  readonly promptMaxLength: number;
  readonly defaultSize: { readonly width: number; readonly height: number };
  /** The fixed sizes (O3's 24), by aspect and tier; absent for a model that takes any size within `sizeRule`. */
  readonly sizes?: readonly { aspect: string; tier: string; width: number; height: number; price: number }[];
  readonly sizeRule: { readonly message: string; readonly allowedValues: unknown };
  /** USD per image at the default size. */
  readonly price: number;
}

const TIERS = ['1K', '2K', '4K'] as const;

/** The served models, from the registry. */
export function modelCatalog(): ModelInfo[] {
  return [...MODELS.values()].map((model) => {
    const fixed = model.id === 'klingai:kling-image@o3';
    return {
      id: model.id,
      name: model.name,
      maxResults: model.maxResults,
      maxInputImages: model.maxInputImages,
      promptMaxLength: model.promptMaxLength,
      defaultSize: model.defaultSize,
      ...(fixed
        ? {
            sizes: Object.entries(O3_SIZES).flatMap(([aspect, sizes]) =>
              sizes.map(([width, height], tier) => ({ aspect, tier: TIERS[tier] ?? '', width, height, price: model.price(width, height) })),
            ),
          }
        : {}),
      sizeRule: model.sizeRule,
      price: model.price(model.defaultSize.width, model.defaultSize.height),
    };
  });
}

/** True when the model exists and accepts the size (the same check as validation). */
export function modelAcceptsSize(modelId: string, width: number, height: number): boolean | undefined {
  const model = MODELS.get(modelId);
  return model?.acceptsSize(width, height);
}

/** The model's size rule message ("Supported values are: …"), for errors outside the Runware format. */
export function sizeRuleMessage(modelId: string): string | undefined {
  return MODELS.get(modelId)?.sizeRule.message;
}

const describe = <T extends z.ZodType>(schema: T, rule: FieldRule<unknown>): T => schema.describe(rule.rule) as T;

/** An enum field: the rule's own allowed values (validation accepts any letter case). */
function enumField(rule: FieldRule<unknown>) {
  return z.enum((rule.allowedValues ?? []) as [string, ...string[]]).describe(`${rule.rule} Any letter case is accepted.`);
}

const modelIds = [...MODELS.keys()] as [string, ...string[]];
const maxInputs = Math.max(...[...MODELS.values()].map((m) => m.maxInputImages));
const maxPrompt = Math.max(...[...MODELS.values()].map((m) => m.promptMaxLength));
const image = describe(RULES.image.schema, RULES.image);
const uuid = z.uuid({ version: 'v4' });

export const elementSchema = z
  .object({ frontalImage: image, referenceImages: z.array(image).max(3).optional() })
  .strict()
  .describe('A face or subject element (Kiln extension): placed unchanged in a fixed frame.');

export const imageInferenceTaskSchema = z
  .object({
    taskType: z.literal('imageInference'),
    taskUUID: uuid.describe('UUID v4 chosen by the client; unique per task.'),
    model: z.enum(modelIds).describe('The model (AIR id).'),
    positivePrompt: z.string().min(1).max(maxPrompt).describe(`The prompt, 1 to ${maxPrompt} characters (code points), not blank.`),
    width: describe(RULES.dimension.schema, RULES.dimension)
      .optional()
      .describe(
        `Output width; with height. ${[...MODELS.values()].map((m) => `${m.id}: ${m.sizeRule.message}`).join(' ')} Without a size: the model's default, or with references the 1K size nearest the first reference's aspect.`,
      ),
    height: describe(RULES.dimension.schema, RULES.dimension).optional().describe('Output height; with width.'),
    inputs: z
      .object({
        referenceImages: z.array(image).min(1).max(maxInputs).optional(),
        elements: z.array(elementSchema).min(1).max(3).optional(),
      })
      .strict()
      .optional(),
    referenceImages: z.array(image).min(1).max(maxInputs).optional().describe('Alias of inputs.referenceImages (not both).'),
    numberResults: describe(RULES.numberResults.schema, RULES.numberResults).default(1),
    outputType: enumField(RULES.outputType).default('URL'),
    outputFormat: enumField(RULES.outputFormat).default('JPG'),
    outputQuality: describe(RULES.outputQuality.schema, RULES.outputQuality).default(95),
    deliveryMethod: enumField(RULES.deliveryMethod).default('sync'),
    webhookURL: describe(RULES.webhookURL.schema, RULES.webhookURL).optional(),
    uploadEndpoint: describe(RULES.uploadEndpoint.schema, RULES.uploadEndpoint).optional(),
    safety: z
      .object({ checkContent: RULES.checkContent.schema.optional(), mode: enumField(RULES.safetyMode).optional() })
      .strict()
      .optional(),
    checkNSFW: RULES.checkNSFW.schema.optional().describe('true is the same as safety.checkContent: true.'),
    ttl: describe(RULES.ttl.schema, RULES.ttl).default(DEFAULT_TTL_SECONDS),
    includeCost: RULES.includeCost.schema.default(false),
    seed: describe(RULES.seed.schema, RULES.seed).optional(),
    progress: RULES.progress.schema
      .optional()
      .describe('Kiln extension: over WebSocket, progress items {status: "progress", imageIndex, stage, progress} while the task runs.'),
    deadlineSeconds: describe(RULES.deadlineSeconds.schema, RULES.deadlineSeconds)
      .optional()
      .describe('Kiln extension: images not finished this many seconds after submission fail with timeoutDeadline and are not charged.'),
    providerSettings: z
      .object({
        klingai: z
          .object({ resultType: enumField(RULES.resultType).optional(), seriesAmount: describe(RULES.seriesAmount.schema, RULES.seriesAmount).optional() })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
  })
  .catchall(z.unknown().describe('Tolerated and ignored: negativePrompt, steps, scheduler, CFGScale, clipSkip, promptWeighting.'))
  .describe('Generate images. Any field not listed is refused with unsupportedParameter, except the tolerated ones.');

export const authenticationTaskSchema = z
  .object({ taskType: z.literal('authentication'), apiKey: z.string().min(1), connectionSessionUUID: z.string().max(128).optional() })
  .strict();
export const pingTaskSchema = z.object({ taskType: z.literal('ping'), taskUUID: z.string().optional() }).strict();
export const imageUploadTaskSchema = z
  .object({ taskType: z.literal('imageUpload'), taskUUID: uuid, image: z.string().min(1).describe('A data URI, base64 data or an http(s) URL.') })
  .strict();
export const getResponseTaskSchema = z.object({ taskType: z.literal('getResponse'), taskUUID: uuid }).strict();
export const cancelTaskSchema = z
  .object({ taskType: z.literal('cancelTask'), taskUUID: uuid })
  .strict()
  .describe('Kiln extension: cancels a task of the same API key (queued images dropped, running ones aborted).');

export const getDeliveriesTaskSchema = z
  .object({ taskType: z.literal('getDeliveries'), taskUUID: uuid })
  .strict()
  .describe("Kiln extension: a task's webhook and upload deliveries, with every attempt.");
export const redeliverTaskSchema = z
  .object({ taskType: z.literal('redeliver'), deliveryId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/), taskUUID: z.string().optional() })
  .strict()
  .describe('Kiln extension: send a settled or failed delivery again under the same id.');

export const taskSchema = z.discriminatedUnion('taskType', [
  authenticationTaskSchema,
  pingTaskSchema,
  imageInferenceTaskSchema,
  imageUploadTaskSchema,
  getResponseTaskSchema,
  cancelTaskSchema,
  getDeliveriesTaskSchema,
  redeliverTaskSchema,
]);
export const requestBodySchema = z.array(taskSchema).min(1).max(100).describe(`A JSON array of 1 to 100 tasks (${TASK_TYPES.join(', ')}).`);

export const imageResultSchema = z.object({
  taskType: z.literal('imageInference'),
  taskUUID: uuid,
  imageUUID: uuid,
  imageURL: z.url().optional().describe('outputType URL: served by Kiln at /image/<imageUUID>.<ext> for ttl seconds.'),
  imageBase64Data: z.string().optional(),
  imageDataURI: z.string().optional(),
  seed: z.int(),
  cost: z.number().optional().describe('USD, with includeCost.'),
  NSFWContent: z.boolean().optional().describe('When a safety check ran.'),
  seriesIndex: z.int().optional(),
  status: z.literal('success').optional().describe('In getResponse answers.'),
});
export const ackResultSchema = z.object({ taskType: z.literal('imageInference'), taskUUID: uuid }).strict().describe('Async tasks: the acknowledgement.');
export const processingResultSchema = z
  .object({
    taskType: z.literal('imageInference'),
    taskUUID: uuid,
    status: z.literal('processing'),
    kilnStatus: z.enum(['queued', 'running']).optional().describe('Kiln extension: whether a worker has started the task.'),
    queuePosition: z.int().min(0).optional().describe('Kiln extension, queued tasks: images waiting or running ahead of it.'),
    startedAt: z.string().optional().describe('Kiln extension, running tasks: when a worker started it (ISO 8601).'),
  })
  .strict()
  .describe('getResponse: an image still being made.');
export const cancelResultSchema = z
  .object({
    taskType: z.literal('cancelTask'),
    taskUUID: uuid,
    cancelledImages: z.int().min(0).describe('Images that will not be made (they end with one taskCancelled error item).'),
    finishedImages: z.array(uuid).describe('imageUUIDs of the images that had already finished (they stay, and are charged).'),
  })
  .strict()
  .describe('Kiln extension: the answer to cancelTask.');
export const authenticationResultSchema = z.object({ taskType: z.literal('authentication'), connectionSessionUUID: z.string() }).strict();
export const pingResultSchema = z.object({ taskType: z.literal('ping'), pong: z.literal(true), taskUUID: z.string().optional() }).strict();
export const imageUploadResultSchema = z
  .object({ taskType: z.literal('imageUpload'), taskUUID: uuid, imageUUID: uuid, imageURL: z.url() })
  .strict();
const deliveryAttemptSchema = z
  .object({
    attempt: z.int().min(1),
    at: z.string().describe('ISO 8601'),
    httpStatus: z.int().optional().describe("The receiver's status, when it answered."),
    error: z.string().optional().describe('Why the attempt failed.'),
    latencyMs: z.int().min(0),
  })
  .strict();
export const getDeliveriesResultSchema = z
  .object({
    taskType: z.literal('getDeliveries'),
    taskUUID: uuid,
    deliveries: z.array(
      z
        .object({
          deliveryId: z.string(),
          kind: z.enum(['webhook', 'upload']),
          host: z.string().describe('The receiver, by host only.'),
          imageUUID: uuid.nullable(),
          status: z.enum(['pending', 'done', 'failed']),
          attempts: z.array(deliveryAttemptSchema),
          nextAttemptAt: z.string().optional().describe('Pending deliveries: when the next attempt is due (ISO 8601).'),
          lastError: z.string().optional(),
        })
        .strict(),
    ),
  })
  .strict()
  .describe('Kiln extension: the answer to getDeliveries.');
export const redeliverResultSchema = z
  .object({ taskType: z.literal('redeliver'), deliveryId: z.string(), taskUUID: z.string(), kind: z.enum(['webhook', 'upload']), status: z.literal('pending') })
  .strict()
  .describe('Kiln extension: the answer to redeliver.');

export const progressResultSchema = z
  .object({
    taskType: z.literal('imageInference'),
    taskUUID: uuid,
    status: z.literal('progress'),
    imageIndex: z.int().min(0),
    stage: z.enum(['queued', 'rendering', 'encoding', 'storing', 'uploading']),
    progress: z.number().min(0).max(1),
  })
  .strict()
  .describe('Kiln extension, WebSocket only, tasks sent with progress: true: where an image is.');

export const resultItemSchema = z.union([
  imageResultSchema,
  ackResultSchema,
  processingResultSchema,
  authenticationResultSchema,
  pingResultSchema,
  imageUploadResultSchema,
  cancelResultSchema,
  progressResultSchema,
  getDeliveriesResultSchema,
  redeliverResultSchema,
]);

export const errorItemSchema = z
  .object({
    code: z.enum(Object.keys(ERROR_STATUS) as [string, ...string[]]),
    message: z.string(),
    parameter: z.union([z.string(), z.array(z.string())]).optional().describe('The field at fault, or several that break a rule together.'),
    type: z.string().optional(),
    allowedValues: z.unknown().optional(),
    min: z.number().optional(),
    max: z.number().optional(),
    documentation: z.string().optional(),
    taskType: z.string().optional(),
    taskUUID: z.string().optional(),
    imageCount: z.int().min(1).optional().describe('Kiln: how many images a failure that ended several of them ended (it is reported once).'),
  })
  .catchall(z.unknown())
  .describe('A Runware error object. HTTP status by code: ' + Object.entries(ERROR_STATUS).map(([c, s]) => `${c} ${s}`).join(', ') + '.');

export const responseEnvelopeSchema = z.object({
  data: z.array(resultItemSchema),
  errors: z.array(errorItemSchema).optional(),
});
