import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError, toFile } from 'openai';
import sharp from 'sharp';
import { startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';

/** The official `openai` npm client against a real Kiln on loopback. */
describe('OpenAI Images API with the official openai client', () => {
  let server: TestServer;
  let client: OpenAI;

  before(async () => {
    server = await startTestServer();
    client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  });
  after(() => server.close());

  const decode = async (bytes: Buffer) => {
    const meta = await sharp(bytes).metadata();
    return [meta.format, meta.width, meta.height];
  };

  test('images.generate with an O3 size answers URLs that serve the image', async () => {
    const result = await client.images.generate({ prompt: 'a lighthouse on a jade sea at dusk', size: '1360x768' as never, response_format: 'url' });
    assert.equal(result.data?.length, 1);
    assert.equal(typeof result.created, 'number');
    const url = result.data?.[0]?.url;
    assert.match(url ?? '', /^http:\/\/[^/]+\/image\/[0-9a-f-]{36}\.png$/);
    const response = await fetch(url!);
    assert.equal(response.status, 200);
    assert.deepEqual(await decode(Buffer.from(await response.arrayBuffer())), ['png', 1360, 768]);
  });

  test('images.generate b64_json with n = 2 and a studio size, as jpeg', async () => {
    const result = await client.images.generate({
      model: 'kiln:studio@1',
      prompt: 'a forest of copper towers',
      size: '320x200' as never,
      n: 2,
      response_format: 'b64_json',
      output_format: 'jpeg',
      output_compression: 80,
    });
    assert.equal(result.data?.length, 2);
    const images = result.data!.map((item) => Buffer.from(item.b64_json ?? '', 'base64'));
    for (const bytes of images) assert.deepEqual(await decode(bytes), ['jpeg', 320, 200]);
    assert.notDeepEqual(images[0], images[1]);
  });

  test('images.edit with two uploaded files uses them as references', async () => {
    const red = await sharp({ create: { width: 400, height: 320, channels: 3, background: '#c03020' } }).png().toBuffer();
    const blue = await sharp({ create: { width: 320, height: 400, channels: 3, background: '#2040c0' } }).jpeg().toBuffer();
    const result = await client.images.edit({
      model: 'kiln:studio@1',
      image: [await toFile(red, 'red.png', { type: 'image/png' }), await toFile(blue, 'blue.jpg', { type: 'image/jpeg' })],
      prompt: 'the same scene at night',
      size: '256x256' as never,
      response_format: 'b64_json',
    });
    assert.equal(result.data?.length, 1);
    assert.deepEqual(await decode(Buffer.from(result.data![0]!.b64_json!, 'base64')), ['png', 256, 256]);
    // The files really are the task's references: the reference rules apply to them (1 to 10).
    const eleven = await Promise.all(Array.from({ length: 11 }, (_, i) => toFile(red, `r${i}.png`, { type: 'image/png' })));
    await assert.rejects(
      client.images.edit({ model: 'kiln:studio@1', image: eleven, prompt: 'x', size: '256x256' as never }),
      (error: unknown) => error instanceof BadRequestError && error.param === 'image',
    );
  });

  test('images/edits also takes a single file under `image`, and refuses a mask', async () => {
    const png = await sharp({ create: { width: 320, height: 320, channels: 3, background: '#208050' } }).png().toBuffer();
    const form = new FormData();
    form.append('image', new Blob([png]), 'green.png');
    form.append('prompt', 'a green valley');
    form.append('model', 'kiln:studio@1');
    form.append('size', '128x128');
    form.append('n', '2');
    const headers = { authorization: `Bearer ${TEST_KEY}` };
    const ok = await fetch(`${server.url}/v1/images/edits`, { method: 'POST', headers, body: form });
    assert.equal(ok.status, 200);
    const body = (await ok.json()) as { data: { url: string }[] };
    assert.equal(body.data.length, 2);
    form.append('mask', new Blob([png]), 'mask.png');
    const masked = await fetch(`${server.url}/v1/images/edits`, { method: 'POST', headers, body: form });
    assert.equal(masked.status, 400);
    assert.equal(((await masked.json()) as { error: { param: string } }).error.param, 'mask');
  });

  test('an unsupported size is a BadRequestError listing the supported sizes', async () => {
    await assert.rejects(
      client.images.generate({ prompt: 'x', size: '1024x1536' }),
      (error: unknown) => {
        assert.ok(error instanceof BadRequestError, String(error));
        assert.equal(error.status, 400);
        assert.equal(error.param, 'size');
        assert.match(error.message, /'1024x1536' is not supported/);
        assert.match(error.message, /'2496x1664'/);
        return true;
      },
    );
    await assert.rejects(client.images.generate({ prompt: 'x', size: 'big' as never }), BadRequestError);
  });

  test('other bad fields are BadRequestErrors naming the OpenAI parameter', async () => {
    await assert.rejects(client.images.generate({ prompt: 'x', n: 50 }), (error: unknown) => error instanceof BadRequestError && error.param === 'n');
    await assert.rejects(client.images.generate({ prompt: '   ' }), (error: unknown) => error instanceof BadRequestError && error.param === 'prompt');
    await assert.rejects(
      client.images.generate({ prompt: 'x', model: 'dall-e-3' }),
      (error: unknown) => error instanceof BadRequestError && error.param === 'model',
    );
    await assert.rejects(
      client.images.generate({ prompt: 'x', bogus: 1 } as never),
      (error: unknown) => error instanceof BadRequestError && error.code === 'unknown_parameter',
    );
    // A field of the wrong type is invalid, not missing; a field left out is missing.
    await assert.rejects(client.images.generate({ prompt: 5 } as never), (error: unknown) => error instanceof BadRequestError && error.param === 'prompt' && error.code === 'invalid_value');
    await assert.rejects(client.images.generate({ prompt: 'x', n: 'abc' } as never), (error: unknown) => error instanceof BadRequestError && error.param === 'n' && error.code === 'invalid_value');
    await assert.rejects(client.images.generate({} as never), (error: unknown) => error instanceof BadRequestError && error.param === 'prompt' && error.code === 'missing_required_parameter');
  });

  test('a bad key is an AuthenticationError in OpenAI\'s error shape', async () => {
    const bad = new OpenAI({ apiKey: 'not-a-kiln-key', baseURL: `${server.url}/v1`, maxRetries: 0 });
    await assert.rejects(bad.images.generate({ prompt: 'x' }), (error: unknown) => {
      assert.ok(error instanceof AuthenticationError, String(error));
      assert.equal(error.code, 'invalid_api_key');
      return true;
    });
    const raw = await fetch(`${server.url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":"x"}' });
    assert.equal(raw.status, 401);
    const body = (await raw.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  });

  test('models.list names the served models; an unknown model is a NotFoundError', async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.deepEqual(ids.sort(), ['kiln:studio@1', 'klingai:kling-image@o3']);
    assert.equal((await client.models.retrieve('kiln:studio@1')).owned_by, 'kiln');
    await assert.rejects(client.models.retrieve('gpt-image-1'), NotFoundError);
  });

  test('the Runware API keeps its own error format beside it', async () => {
    const response = await fetch(`${server.url}/v1`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}` }, body: 'nope' });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { errors: { code: string }[] };
    assert.equal(body.errors[0]?.code, 'invalidRequestBody');
  });
});

describe('OpenAI Images API: the limits of POST /v1 apply', () => {
  let server: TestServer;
  let client: OpenAI;
  before(async () => {
    // About 0.3 MB of reply: one base64 PNG of 512² noise-free studio art fits, three do not.
    server = await startTestServer({ KILN_MAX_REPLY_MB: '0.3' });
    client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  });
  after(() => server.close());

  const generate = (body: unknown): Promise<Response> =>
    fetch(`${server.url}/v1/images/generations`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  test('a body nested deeper than KILN_MAX_JSON_DEPTH is refused before it is parsed', async () => {
    const response = await generate(`{"prompt":"a cat","user":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'invalid_json');
    assert.match(body.error.message, /nested deeper than/);
  });

  test('base64 images past the reply cap are left out and counted in a header; none fitting is a 413', async () => {
    const one = await generate({ model: 'kiln:studio@1', prompt: 'a forest of copper towers', size: '256x256', n: 1, response_format: 'b64_json' });
    assert.equal(one.status, 200);
    const sizeOfOne = ((await one.json()) as { data: { b64_json: string }[] }).data[0]!.b64_json.length;
    assert.ok(sizeOfOne > 0 && sizeOfOne < 0.3 * 1024 * 1024, `one image: ${sizeOfOne} bytes`);
    const perCap = Math.floor((0.3 * 1024 * 1024) / (sizeOfOne * 1.5));
    const n = Math.min(10, perCap + 3);
    const many = await generate({ model: 'kiln:studio@1', prompt: 'a forest of copper towers', size: '256x256', n, response_format: 'b64_json' });
    assert.equal(many.status, 200);
    const body = (await many.json()) as { data: { b64_json: string }[] };
    const leftOut = Number(many.headers.get('x-kiln-images-left-out'));
    assert.ok(leftOut > 0, 'some images were left out');
    assert.equal(body.data.length + leftOut, n);
    assert.ok(body.data.reduce((sum, d) => sum + d.b64_json.length, 0) <= 0.3 * 1024 * 1024);
    // URLs are small: all of them fit.
    const urls = await client.images.generate({ model: 'kiln:studio@1', prompt: 'a forest of copper towers', size: '256x256' as never, n, response_format: 'url' });
    assert.equal(urls.data?.length, n);
    // A 2048² PNG alone is larger than the cap.
    const huge = await generate({ model: 'kiln:studio@1', prompt: 'a forest of copper towers', size: '2048x2048', n: 1, response_format: 'b64_json', output_format: 'png' });
    assert.equal(huge.status, 413);
    assert.equal(huge.headers.get('x-kiln-cost'), '0', 'the image made (and charged) is still priced');
    assert.equal(((await huge.json()) as { error: { code: string } }).error.code, 'response_too_large');
  });
});
