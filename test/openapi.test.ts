import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

/** `/openapi.json` validates as OpenAPI 3.1, and real answers validate against its schemas. */
describe('the OpenAPI document', () => {
  let server: TestServer;
  let document: Record<string, any>;
  let ajv: Ajv2020;

  before(async () => {
    server = await startTestServer();
    const response = await fetch(`${server.url}/openapi.json`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
    document = (await response.json()) as Record<string, any>;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    (addFormats as unknown as (a: Ajv2020) => void)(ajv);
    ajv.addSchema(document, 'kiln-openapi');
  });
  after(() => server.close());

  const check = (schema: string, value: unknown): void => {
    const validate = ajv.getSchema(`kiln-openapi#/components/schemas/${schema}`);
    assert.ok(validate, `no schema ${schema}`);
    assert.ok(validate(value), `${schema}: ${JSON.stringify(validate.errors, null, 1)}\n${JSON.stringify(value).slice(0, 400)}`);
  };

  test('is a valid OpenAPI 3.1 document (@apidevtools/swagger-parser)', async () => {
    const api = await SwaggerParser.validate(structuredClone(document) as never);
    assert.equal((api as { openapi: string }).openapi, '3.1.0');
    for (const path of ['/v1', '/image/{file}', '/health', '/metrics', '/v1/images/generations', '/v1/images/edits', '/v1/models']) {
      assert.ok(document.paths[path], `path ${path}`);
    }
    assert.match(document.info.description, /WebSocket/);
    // The server's own version, read from package.json beside its build (also in the compiled suite).
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(document.info.version, pkg.version);
  });

  test('its field schemas are the validation rules (enums, bounds, every task type)', () => {
    const inference = document.components.schemas.ImageInferenceTask;
    assert.deepEqual(inference.properties.outputFormat.enum, ['JPG', 'PNG', 'WEBP']);
    assert.deepEqual([inference.properties.numberResults.minimum, inference.properties.numberResults.maximum], [1, 20]);
    assert.deepEqual([inference.properties.outputQuality.minimum, inference.properties.outputQuality.maximum], [20, 99]);
    assert.deepEqual(inference.properties.model.enum.sort(), ['kiln:studio@1', 'klingai:kling-image@o3']);
    const types = document.components.schemas.Task.oneOf.map((s: { $ref: string }) => s.$ref.split('/').pop());
    assert.deepEqual(types.sort(), ['AuthenticationTask', 'CancelTask', 'GetDeliveriesTask', 'GetResponseTask', 'ImageInferenceTask', 'ImageUploadTask', 'PingTask', 'RedeliverTask']);
  });

  test('a real request and its results, an async ack, getResponse and an error validate', async () => {
    const request = [
      {
        taskType: 'imageInference',
        taskUUID: randomUUID(),
        model: 'kiln:studio@1',
        positivePrompt: 'a harbour of glass boats',
        width: 256,
        height: 192,
        numberResults: 2,
        includeCost: true,
        outputType: 'URL',
        outputFormat: 'WEBP',
      },
    ];
    check('RequestBody', request);
    const sync = await post(server, request);
    assert.equal(sync.status, 200);
    check('ResponseEnvelope', sync.body);

    const asyncUUID = randomUUID();
    const ack = await post(server, [{ taskType: 'imageInference', taskUUID: asyncUUID, model: 'kiln:studio@1', positivePrompt: 'x', width: 128, height: 128, deliveryMethod: 'async', outputType: 'base64Data' }]);
    check('ResponseEnvelope', ack.body);
    const polled = await post(server, [{ taskType: 'getResponse', taskUUID: asyncUUID }, { taskType: 'ping' }]);
    check('ResponseEnvelope', polled.body);

    const bad = await post(server, [{ taskType: 'imageInference', taskUUID: randomUUID(), model: 'klingai:kling-image@o3', positivePrompt: 'x', width: 1000, height: 1000 }]);
    assert.equal(bad.status, 400);
    check('ResponseEnvelope', bad.body);
    const unauthorised = await post(server, request, { key: 'wrong' });
    check('ResponseEnvelope', unauthorised.body);

    // The schemas do refuse what Kiln must never send or accept.
    const envelope = ajv.getSchema('kiln-openapi#/components/schemas/ResponseEnvelope')!;
    assert.equal(envelope({ data: [{ taskType: 'imageInference', imageUUID: 'x' }] }), false);
    assert.equal(envelope({ data: [], errors: [{ code: 'noSuchCode', message: 'x' }] }), false);
    const body = ajv.getSchema('kiln-openapi#/components/schemas/RequestBody')!;
    assert.equal(body([{ ...request[0], numberResults: 21 }]), false);
    assert.equal(body([{ ...request[0], outputFormat: 'GIF' }]), false);
    assert.equal(body([]), false);
  });

  test('OpenAI answers and errors validate', async () => {
    const headers = { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' };
    const body = { model: 'kiln:studio@1', prompt: 'a paper kite', size: '128x128', response_format: 'b64_json' };
    check('OpenAIImageGenerationRequest', body);
    const ok = await fetch(`${server.url}/v1/images/generations`, { method: 'POST', headers, body: JSON.stringify(body) });
    assert.equal(ok.status, 200);
    check('OpenAIImagesResponse', await ok.json());
    const error = await fetch(`${server.url}/v1/images/generations`, { method: 'POST', headers, body: JSON.stringify({ ...body, size: '100x100' }) });
    assert.equal(error.status, 400);
    check('OpenAIError', await error.json());
    const models = await fetch(`${server.url}/v1/models`, { headers });
    check('OpenAIModelList', await models.json());
  });

  test('/docs renders it from the same server, with nothing from elsewhere', async () => {
    const page = await fetch(`${server.url}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const html = await page.text();
    const scripts = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((src) => !src.startsWith("data:"));
    assert.ok(scripts.length > 0);
    for (const src of scripts) {
      assert.ok(src.startsWith('/'), `${src} is served by Kiln`);
      const asset = await fetch(`${server.url}${src}`);
      assert.equal(asset.status, 200, src);
      assert.doesNotMatch(await asset.text(), /https?:\/\/(?!localhost|127\.)[a-z]/i, `${src} loads nothing from elsewhere`);
    }
  });
});
