/**
 * `GET /openapi.json`: an OpenAPI 3.1 document built from the zod schemas that validate requests
 * (protocol/request-schemas.ts, api/openai-mapping.ts) with zod's own `z.toJSONSchema`. Nothing
 * here restates a field; it only places the schemas on their paths.
 */
import { z } from 'zod';
import * as wire from '../protocol/request-schemas.ts';
import * as openai from './openai-mapping.ts';

type Json = Record<string, unknown>;
const ref = (id: string): Json => ({ $ref: `#/components/schemas/${id}` });

/** Converts a registry of schemas; `$ref`s between them point into `components.schemas`. */
function convert(entries: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(entries)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  const out: Record<string, Json> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _dialect, $id: _id, ...rest } = schema as Json;
    out[id] = rest;
  }
  return out;
}

const WEBSOCKET_TEXT = `
## WebSocket

Connect to \`ws://<host>/v1\` (or \`/\`). Every frame is text: a JSON array of the same tasks as
\`POST /v1\`, and every answer is its own frame shaped like a REST body, \`{"data":[…]}\` or
\`{"errors":[…]}\`.

1. Send \`[{"taskType":"authentication","apiKey":"<key>"}]\`; the answer is
   \`{"data":[{"taskType":"authentication","connectionSessionUUID":"…"}]}\`. Re-sending it with that
   \`connectionSessionUUID\` after a drop resumes the session and replays undelivered frames (120 s).
2. Send \`imageInference\` tasks: a sync task is answered with one frame per image as soon as it is
   finished; an async one with one acknowledgement; errors come as \`{"errors":[…]}\` frames
   naming the \`taskUUID\` and the \`parameter\` at fault.
3. \`[{"taskType":"ping"}]\` is answered \`{"data":[{"taskType":"ping","pong":true}]}\` at once.

\`?dryRun=1\` on the URL validates without running. A socket idle for 120 s is closed (1000); a frame
larger than the body limit closes it with 1009. Status codes of REST errors follow each error's code.

## OpenAI Images API

\`/v1/images/generations\`, \`/v1/images/edits\` and \`/v1/models\` accept the official \`openai\`
clients (base URL \`http://<host>/v1\`, the Kiln key as API key). They run the same pipeline, with
errors in OpenAI's shape \`{"error":{"message","type","param","code"}}\`.
`;

function json(schema: Json, description = 'OK'): Json {
  return { description, content: { 'application/json': { schema } } };
}

/** The document, for `version` and the servers' base URL. */
export function buildOpenApiDocument(version: string): Json {
  const requests = convert(
    {
      ImageInferenceTask: wire.imageInferenceTaskSchema,
      AuthenticationTask: wire.authenticationTaskSchema,
      PingTask: wire.pingTaskSchema,
      ImageUploadTask: wire.imageUploadTaskSchema,
      GetResponseTask: wire.getResponseTaskSchema,
      CancelTask: wire.cancelTaskSchema,
      GetDeliveriesTask: wire.getDeliveriesTaskSchema,
      RedeliverTask: wire.redeliverTaskSchema,
      Task: wire.taskSchema,
      RequestBody: wire.requestBodySchema,
      OpenAIImageGenerationRequest: openai.generationRequestSchema,
      OpenAIImageEditRequest: openai.editRequestSchema,
    },
    'input',
  );
  const responses = convert(
    {
      ImageResult: wire.imageResultSchema,
      AckResult: wire.ackResultSchema,
      ProcessingResult: wire.processingResultSchema,
      AuthenticationResult: wire.authenticationResultSchema,
      PingResult: wire.pingResultSchema,
      ImageUploadResult: wire.imageUploadResultSchema,
      CancelResult: wire.cancelResultSchema,
      ProgressResult: wire.progressResultSchema,
      GetDeliveriesResult: wire.getDeliveriesResultSchema,
      RedeliverResult: wire.redeliverResultSchema,
      ResultItem: wire.resultItemSchema,
      ErrorItem: wire.errorItemSchema,
      ResponseEnvelope: wire.responseEnvelopeSchema,
      OpenAIImagesResponse: openai.imagesResponseSchema,
      OpenAIModel: openai.modelObjectSchema,
      OpenAIModelList: openai.modelListSchema,
      OpenAIError: openai.openAiErrorSchema,
    },
    'output',
  );
  // multipart: the image files are binary parts.
  const edit = requests.OpenAIImageEditRequest as { properties?: Record<string, Json> };
  if (edit.properties?.image) edit.properties.image = { type: 'array', items: { type: 'string', contentMediaType: 'application/octet-stream' }, description: edit.properties.image.description };

  const runwareErrors = (codes: number[]): Json =>
    Object.fromEntries(codes.map((code) => [String(code), json(ref('ResponseEnvelope'), 'Errors (`data` is [] when nothing succeeded).')]));
  const openAiErrors = (codes: number[]): Json =>
    Object.fromEntries(codes.map((code) => [String(code), json(ref('OpenAIError'), 'An error in OpenAI\'s shape.')]));
  const openAiOp = (summary: string, body: Json, response: string): Json => ({
    tags: ['OpenAI Images API'],
    summary,
    security: [{ bearer: [] }],
    requestBody: { required: true, content: body },
    responses: { '200': json(ref(response)), ...openAiErrors([400, 401, 413, 429, 500, 503, 504]) },
  });

  return {
    openapi: '3.1.0',
    info: {
      title: 'Kiln',
      version,
      summary: 'Self-hosted, Runware-compatible image inference for klingai:kling-image@o3.',
      description: `Kiln speaks the Runware task API over REST (\`POST /v1\`) and WebSocket, and the OpenAI Images API.\n${WEBSOCKET_TEXT}\n## Models\n\n${wire
        .modelCatalog()
        .map((m) => `- \`${m.id}\` (${m.name}): ${m.sizeRule.message} Up to ${m.maxResults} results and ${m.maxInputImages} reference images.`)
        .join('\n')}`,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'Runware task API', description: 'Tasks in, result items and error items out.' },
      { name: 'OpenAI Images API', description: 'A second front door for OpenAI clients.' },
      { name: 'Operations' },
    ],
    paths: {
      '/v1': {
        post: {
          tags: ['Runware task API'],
          summary: 'Run tasks (imageInference, imageUpload, getResponse, authentication, ping; Kiln extensions cancelTask, getDeliveries, redeliver)',
          description: 'Authenticate with `Authorization: Bearer <key>` or an `authentication` task first in the array.',
          security: [{ bearer: [] }, {}],
          parameters: [
            {
              name: 'dryRun',
              in: 'query',
              required: false,
              schema: { enum: ['1', 'true'] },
              description: 'Validate and price only (docs/tenancy.md): the ack item carries `cost` and `budgetRemaining`; nothing is charged, stored or queued.',
            },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: ref('RequestBody') } } },
          responses: {
            '200': json(ref('ResponseEnvelope'), 'Results; `errors` too when some tasks failed but at least one produced data.'),
            ...runwareErrors([400, 401, 402, 404, 413, 429, 500, 502, 503, 504]),
          },
        },
      },
      '/v1/usage': {
        get: {
          tags: ['Runware task API'],
          summary: "Kiln extension: the calling key's own usage ledger (one row per charged image) and totals (docs/tenancy.md)",
          security: [{ bearer: [] }],
          parameters: ['since', 'until'].map((name) => ({
            name,
            in: 'query',
            required: false,
            schema: { type: 'string' },
            description: `${name === 'since' ? 'From (inclusive)' : 'Up to (exclusive)'}: an ISO 8601 date or time, or ms since the epoch.`,
          })),
          responses: {
            '200': json({
              type: 'object',
              properties: {
                totals: { type: 'object', properties: { images: { type: 'integer' }, cost: { type: 'number' } }, required: ['images', 'cost'] },
                rows: { type: 'array', items: { type: 'object', additionalProperties: true } },
              },
              required: ['totals', 'rows'],
            }),
            ...runwareErrors([400, 401]),
          },
        },
      },
      '/image/{file}': {
        get: {
          tags: ['Runware task API'],
          summary: 'An image made with outputType URL (public until its ttl ends)',
          parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-f-]{36}\\.(jpg|png|webp)$' }, description: '<imageUUID>.<jpg|png|webp>' }],
          responses: {
            '200': {
              description: 'The image bytes.',
              content: Object.fromEntries(['image/jpeg', 'image/png', 'image/webp'].map((type) => [type, { schema: { type: 'string', contentMediaType: type } }])),
            },
            ...runwareErrors([404]),
          },
        },
      },
      '/v1/images/generations': {
        post: openAiOp('Create images (OpenAI images.generate)', { 'application/json': { schema: ref('OpenAIImageGenerationRequest') } }, 'OpenAIImagesResponse'),
      },
      '/v1/images/edits': {
        post: openAiOp('Create images from reference images (OpenAI images.edit)', { 'multipart/form-data': { schema: ref('OpenAIImageEditRequest') } }, 'OpenAIImagesResponse'),
      },
      '/v1/models': {
        get: { tags: ['OpenAI Images API'], summary: 'The served models', security: [{ bearer: [] }], responses: { '200': json(ref('OpenAIModelList')), ...openAiErrors([401]) } },
      },
      '/health': {
        get: {
          tags: ['Operations'],
          summary: 'Liveness',
          responses: { '200': json({ type: 'object', properties: { status: { const: 'ok' } }, required: ['status'], additionalProperties: true }) },
        },
      },
      '/ready': {
        get: {
          tags: ['Operations'],
          summary: 'Readiness: 200 when the store, the queue and the event bus answer (and the queue is below KILN_READY_MAX_QUEUED_IMAGES), 503 naming the failing check',
          responses: {
            '200': json({ type: 'object', properties: { status: { const: 'ready' } }, additionalProperties: true }),
            '503': json({ type: 'object', additionalProperties: true }, 'A check failed'),
          },
        },
      },
      '/metrics': {
        get: { tags: ['Operations'], summary: 'Prometheus metrics', responses: { '200': { description: 'Prometheus text format.', content: { 'text/plain': { schema: { type: 'string' } } } } } },
      },
      '/openapi.json': { get: { tags: ['Operations'], summary: 'This document', responses: { '200': json({ type: 'object' }) } } },
      '/docs': { get: { tags: ['Operations'], summary: 'This document, rendered', responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } } },
      '/': {
        get: {
          tags: ['Operations'],
          summary: 'The playground (Accept: text/html), a JSON description otherwise; WebSocket upgrade as /v1',
          responses: { '200': { description: 'HTML page or JSON', content: { 'text/html': { schema: { type: 'string' } }, 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A Kiln API key.' } },
      schemas: { ...requests, ...responses },
    },
  };
}
