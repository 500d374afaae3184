import { z } from 'zod';
import { ApiError, documentationFor, unsupportedParameter } from '../errors/index.ts';
import { MODELS, type ModelSpec } from '../models/model-registry.ts';
import {
  boolRule,
  check,
  enumRule,
  fieldError,
  httpUrlRule,
  intRule,
  isPlainObject,
  type FieldRule,
} from './field-rules.ts';
import type { ElementRequest, InferenceTask } from './task-types.ts';

export const DEFAULT_TTL_SECONDS = 86_400;
export const MAX_TTL_SECONDS = 2_592_000;
const MAX_SEED = 2 ** 31 - 1;
const MAX_IMAGE_STRING = 100 * 1024 * 1024;

/** The field rules of `imageInference` (also the source of the OpenAPI schemas, protocol/request-schemas.ts). */
export const RULES = {
  numberResults: intRule('invalidNumberResults', 1, 20),
  outputType: enumRule('invalidOutputType', ['URL', 'dataURI', 'base64Data'] as const),
  outputFormat: enumRule('invalidOutputFormat', ['JPG', 'PNG', 'WEBP'] as const),
  outputQuality: intRule('invalidOutputQuality', 20, 99),
  deliveryMethod: enumRule('invalidDeliveryMethod', ['sync', 'async'] as const),
  webhookURL: httpUrlRule('invalidWebhookURL'),
  uploadEndpoint: httpUrlRule('invalidUploadEndpoint'),
  ttl: intRule('invalidTtl', 60, MAX_TTL_SECONDS, 'an integer number of seconds'),
  includeCost: boolRule('invalidIncludeCost'),
  checkContent: boolRule('invalidSafety'),
  safetyMode: enumRule('invalidSafety', ['none', 'fast'] as const),
  checkNSFW: boolRule('invalidSafety'),
  seed: intRule('invalidSeed', 1, MAX_SEED),
  deadlineSeconds: intRule('invalidParameter', 1, 86_400, 'an integer number of seconds'),
  progress: boolRule('invalidParameter'),
  resultType: enumRule('invalidProviderSettings', ['single', 'series'] as const),
  seriesAmount: intRule('invalidProviderSettings', 2, 9),
  dimension: { schema: z.number().int().min(1).max(100_000), code: 'invalidWidth', rule: 'It must be a positive integer.', type: 'integer' },
  image: {
    schema: z.string().min(1).max(MAX_IMAGE_STRING),
    code: 'invalidReferenceImage',
    rule: 'Each image must be a non-empty string: an image UUID, an http(s) URL, a data URI or base64 data.',
    type: 'string',
  },
} as const satisfies Record<string, FieldRule<unknown>>;

/** Fields documented for the model (runware-protocol.md §4.3.1), plus Kiln's extensions. */
export const KNOWN = new Set([
  'taskType', 'taskUUID', 'model', 'positivePrompt', 'width', 'height', 'inputs', 'referenceImages',
  'numberResults', 'outputType', 'outputFormat', 'outputQuality', 'webhookURL', 'deliveryMethod',
  'uploadEndpoint', 'safety', 'ttl', 'includeCost', 'seed', 'providerSettings', 'checkNSFW',
  'deadlineSeconds', 'progress',
]);

/** Fields the real clients send that the model ignores (§4.3.2): accepted, logged. */
export const TOLERATED = new Set(['negativePrompt', 'steps', 'scheduler', 'CFGScale', 'clipSkip', 'promptWeighting']);

function rejectUnknownKeys(object: Record<string, unknown>, allowed: readonly string[], prefix: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw unsupportedParameter(`${prefix}${key}`);
  }
}

/**
 * Whether `value` has more than `max` code points (an emoji is one character, not two UTF-16
 * units). Counted without copying: a prompt of many megabytes is refused at once, not spread
 * into an array of characters.
 */
function codePointsOver(value: string, max: number): boolean {
  if (value.length <= max) return false;
  if (value.length > 2 * max) return true;
  let count = 0;
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < value.length) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    if (++count > max) return true;
  }
  return false;
}

function validatePrompt(value: unknown, model: ModelSpec): string {
  const max = model.promptMaxLength;
  if (typeof value !== 'string' || codePointsOver(value, max) || value.trim().length === 0) {
    throw new ApiError(
      'invalidPositivePrompt',
      `Invalid value for 'positivePrompt' parameter. The prompt length must be between 1 and ${max} characters.`,
      { parameter: 'positivePrompt', type: 'string', min: 1, max, documentation: documentationFor('positivePrompt') },
    );
  }
  return value;
}

function validateSize(raw: Record<string, unknown>, model: ModelSpec): { width?: number; height?: number } {
  const hasWidth = raw.width !== undefined;
  const hasHeight = raw.height !== undefined;
  if (!hasWidth && !hasHeight) return {};
  const width = hasWidth ? check({ ...RULES.dimension, code: 'invalidWidth' }, 'width', raw.width) : undefined;
  const height = hasHeight ? check({ ...RULES.dimension, code: 'invalidHeight' }, 'height', raw.height) : undefined;
  if (width === undefined || height === undefined) {
    throw new ApiError('unsupportedDimensions', "The 'width' and 'height' parameters must be provided together.", {
      parameter: ['width', 'height'],
      documentation: documentationFor('width'),
    });
  }
  if (!model.acceptsSize(width, height)) {
    throw new ApiError(
      'unsupportedDimensions',
      `Unsupported use of width/height parameters. The specified dimensions are not supported for the selected model. ${model.sizeRule.message}`,
      { parameter: ['width', 'height'], allowedValues: model.sizeRule.allowedValues, documentation: documentationFor('width') },
    );
  }
  return { width, height };
}

function validateImageList(value: unknown, parameter: string, min: number, max: number): string[] {
  if (!Array.isArray(value) || value.length < min || value.length > max) {
    throw fieldError(
      { code: 'invalidReferenceImage', rule: `It must be an array of ${min} to ${max} images.`, type: 'array', min, max },
      parameter,
    );
  }
  return value.map((item, i) => check(RULES.image, `${parameter}[${i}]`, item));
}

function validateElements(value: unknown): ElementRequest[] {
  if (!Array.isArray(value) || value.length < 1 || value.length > 3) {
    throw fieldError(
      { code: 'invalidElements', rule: 'It must be an array of 1 to 3 elements.', type: 'array', min: 1, max: 3 },
      'inputs.elements',
    );
  }
  return value.map((item, i) => {
    const at = `inputs.elements[${i}]`;
    if (!isPlainObject(item)) {
      throw fieldError({ code: 'invalidElements', rule: 'Each element must be an object with a frontalImage.', type: 'object' }, at);
    }
    rejectUnknownKeys(item, ['frontalImage', 'referenceImages'], `${at}.`);
    if (item.frontalImage === undefined) {
      throw fieldError({ code: 'invalidElements', rule: 'A frontalImage is required.', type: 'string' }, `${at}.frontalImage`);
    }
    const frontalImage = check(RULES.image, `${at}.frontalImage`, item.frontalImage);
    const referenceImages =
      item.referenceImages === undefined ? [] : validateImageList(item.referenceImages, `${at}.referenceImages`, 0, 3);
    return { frontalImage, referenceImages };
  });
}

function validateInputs(raw: Record<string, unknown>, model: ModelSpec) {
  let referenceImages: string[] = [];
  let elements: ElementRequest[] = [];
  if (raw.inputs !== undefined) {
    if (!isPlainObject(raw.inputs)) {
      throw fieldError({ code: 'invalidParameter', rule: 'It must be an object.', type: 'object' }, 'inputs');
    }
    rejectUnknownKeys(raw.inputs, ['referenceImages', 'elements'], 'inputs.');
    if (raw.inputs.referenceImages !== undefined) {
      referenceImages = validateImageList(raw.inputs.referenceImages, 'inputs.referenceImages', 1, model.maxInputImages);
    }
    if (raw.inputs.elements !== undefined) elements = validateElements(raw.inputs.elements);
  }
  if (raw.referenceImages !== undefined) {
    if (referenceImages.length > 0) {
      throw new ApiError(
        'invalidParameter',
        "Use either 'inputs.referenceImages' or its alias 'referenceImages', not both.",
        { parameter: ['referenceImages', 'inputs.referenceImages'] },
      );
    }
    referenceImages = validateImageList(raw.referenceImages, 'referenceImages', 1, model.maxInputImages);
  }
  const total = referenceImages.length + elements.reduce((n, e) => n + 1 + e.referenceImages.length, 0);
  if (total > model.maxInputImages) {
    throw new ApiError(
      'invalidReferenceImage',
      `Too many input images: reference images and element images together must be at most ${model.maxInputImages}, got ${total}.`,
      { parameter: ['inputs.referenceImages', 'inputs.elements'], max: model.maxInputImages },
    );
  }
  return { referenceImages, elements };
}

function validateSafety(raw: Record<string, unknown>): 'none' | 'fast' {
  let mode: 'none' | 'fast' = 'none';
  if (raw.checkNSFW !== undefined && check(RULES.checkNSFW, 'checkNSFW', raw.checkNSFW)) mode = 'fast';
  if (raw.safety === undefined) return mode;
  if (!isPlainObject(raw.safety)) {
    throw fieldError({ code: 'invalidSafety', rule: 'It must be an object.', type: 'object' }, 'safety');
  }
  rejectUnknownKeys(raw.safety, ['checkContent', 'mode'], 'safety.');
  if (raw.safety.checkContent !== undefined && check(RULES.checkContent, 'safety.checkContent', raw.safety.checkContent)) {
    mode = 'fast';
  }
  // The documented precedence: an explicit mode wins over checkContent.
  if (raw.safety.mode !== undefined) mode = check(RULES.safetyMode, 'safety.mode', raw.safety.mode);
  return mode;
}

function validateProviderSettings(raw: Record<string, unknown>): { resultType: 'single' | 'series'; seriesAmount?: number } {
  if (raw.providerSettings === undefined) return { resultType: 'single' };
  if (!isPlainObject(raw.providerSettings)) {
    throw fieldError({ code: 'invalidProviderSettings', rule: 'It must be an object.', type: 'object' }, 'providerSettings');
  }
  rejectUnknownKeys(raw.providerSettings, ['klingai'], 'providerSettings.');
  const kling = raw.providerSettings.klingai;
  if (kling === undefined) return { resultType: 'single' };
  if (!isPlainObject(kling)) {
    throw fieldError({ code: 'invalidProviderSettings', rule: 'It must be an object.', type: 'object' }, 'providerSettings.klingai');
  }
  rejectUnknownKeys(kling, ['resultType', 'seriesAmount'], 'providerSettings.klingai.');
  const resultType =
    kling.resultType === undefined ? 'single' : check(RULES.resultType, 'providerSettings.klingai.resultType', kling.resultType);
  if (kling.seriesAmount !== undefined && resultType !== 'series') {
    throw unsupportedParameter('providerSettings.klingai.seriesAmount');
  }
  if (resultType === 'single') return { resultType };
  const seriesAmount =
    kling.seriesAmount === undefined ? 4 : check(RULES.seriesAmount, 'providerSettings.klingai.seriesAmount', kling.seriesAmount);
  return { resultType, seriesAmount };
}

/**
 * Validates an `imageInference` task whose `taskUUID` has already been checked. Throws the
 * first problem as an `ApiError` (without task identity; the caller adds it).
 */
export function validateInference(raw: Record<string, unknown>, taskUUID: string): InferenceTask {
  if (raw.model === undefined) {
    throw new ApiError('invalidModel', "Missing required parameter 'model'.", { parameter: 'model' });
  }
  const model = typeof raw.model === 'string' ? MODELS.get(raw.model) : undefined;
  if (model === undefined) {
    throw new ApiError(
      'invalidModel',
      `Invalid value for 'model' parameter. Supported models are: ${[...MODELS.keys()].map((m) => `'${m}'`).join(', ')}.`,
      { parameter: 'model', allowedValues: [...MODELS.keys()] },
    );
  }
  const ignoredFields: string[] = [];
  for (const key of Object.keys(raw)) {
    if (TOLERATED.has(key)) ignoredFields.push(key);
    else if (!KNOWN.has(key)) throw unsupportedParameter(key);
  }
  const positivePrompt = validatePrompt(raw.positivePrompt, model);
  const size = validateSize(raw, model);
  const { referenceImages, elements } = validateInputs(raw, model);
  const opt = <T>(rule: FieldRule<T>, key: string, fallback: T): T =>
    raw[key] === undefined ? fallback : check(rule, key, raw[key]);
  const numberResults = opt(RULES.numberResults, 'numberResults', 1);
  const outputType = opt(RULES.outputType, 'outputType', 'URL');
  const outputFormat = opt(RULES.outputFormat, 'outputFormat', 'JPG');
  const outputQuality = opt(RULES.outputQuality, 'outputQuality', 95);
  const explicitDelivery = raw.deliveryMethod !== undefined;
  const deliveryMethod = opt(RULES.deliveryMethod, 'deliveryMethod', 'sync');
  const webhookURL = raw.webhookURL === undefined ? undefined : check(RULES.webhookURL, 'webhookURL', raw.webhookURL);
  const uploadEndpoint =
    raw.uploadEndpoint === undefined ? undefined : check(RULES.uploadEndpoint, 'uploadEndpoint', raw.uploadEndpoint);
  const safetyMode = validateSafety(raw);
  const ttl = opt(RULES.ttl, 'ttl', DEFAULT_TTL_SECONDS);
  const includeCost = opt(RULES.includeCost, 'includeCost', false);
  const seed = raw.seed === undefined ? undefined : check(RULES.seed, 'seed', raw.seed);
  const deadlineSeconds = raw.deadlineSeconds === undefined ? undefined : check(RULES.deadlineSeconds, 'deadlineSeconds', raw.deadlineSeconds);
  const progress = raw.progress === undefined ? false : check(RULES.progress, 'progress', raw.progress);
  const series = validateProviderSettings(raw);
  // A series is sized by seriesAmount. numberResults may be left at 1 or equal seriesAmount
  // (sdk-js waits for numberResults items before it resolves a sync request).
  if (series.resultType === 'series' && numberResults !== 1 && numberResults !== series.seriesAmount) {
    throw new ApiError(
      'unsupportedParameter',
      "Unsupported use of 'numberResults' parameter. A series (resultType 'series') is sized by seriesAmount; numberResults must be 1 or equal seriesAmount.",
      { parameter: 'numberResults' },
    );
  }
  return {
    taskType: 'imageInference',
    taskUUID,
    model: model.id,
    positivePrompt,
    ...size,
    referenceImages,
    elements,
    numberResults,
    outputType,
    outputFormat,
    outputQuality,
    deliveryMethod,
    acknowledgeOnly: deliveryMethod === 'async' || (webhookURL !== undefined && !explicitDelivery),
    ...(webhookURL === undefined ? {} : { webhookURL }),
    ...(uploadEndpoint === undefined ? {} : { uploadEndpoint }),
    safetyMode,
    ttl,
    includeCost,
    ...(seed === undefined ? {} : { seed }),
    ...(deadlineSeconds === undefined ? {} : { deadlineSeconds }),
    ...(progress ? { progress } : {}),
    ...series,
    ignoredFields,
  };
}
