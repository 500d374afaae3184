import assert from 'node:assert/strict';
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;
import { after, before, describe, test } from 'node:test';
import { createRunware } from '@runware/ai-sdk-provider';
import { APICallError, generateImage } from 'ai';
import sharp from 'sharp';
import { startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';

describe('@runware/ai-sdk-provider with generateImage over REST', () => {
  let server: TestServer;
  let runware: ReturnType<typeof createRunware>;

  before(async () => {
    server = await startTestServer();
    runware = createRunware({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
  });
  after(() => server.close());

  test('a 1360×768 image comes back through its URL and decodes', async () => {
    const result = await generateImage({
      model: runware.image('klingai:kling-image@o3'),
      prompt: 'a retro-futurist railway terminal by the sea, teal and brass',
      size: '1360x768',
      maxRetries: 0,
    });
    assert.equal(result.images.length, 1);
    const bytes = Buffer.from(result.images[0]!.uint8Array);
    const meta = await sharp(bytes).metadata();
    // The provider asks for PNG by default.
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 1360, 768]);
  });

  test('n: 2 gives two different images', async () => {
    const result = await generateImage({
      model: runware.image('kiln:studio@1'),
      prompt: 'a forest of copper towers',
      size: '256x256',
      n: 2,
      maxRetries: 0,
    });
    assert.equal(result.images.length, 2);
    assert.notDeepEqual(Buffer.from(result.images[0]!.uint8Array), Buffer.from(result.images[1]!.uint8Array));
  });

  test('the default 512×512 fails with a 400 unsupportedDimensions', async () => {
    await assert.rejects(
      generateImage({ model: runware.image('klingai:kling-image@o3'), prompt: 'a cat', maxRetries: 0 }),
      (error: unknown) => {
        assert.ok(APICallError.isInstance(error), String(error));
        assert.equal(error.statusCode, 400);
        const body = JSON.parse(error.responseBody ?? '{}');
        assert.equal(body.errors[0].code, 'unsupportedDimensions');
        return true;
      },
    );
  });
});
