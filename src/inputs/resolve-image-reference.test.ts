import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeBmp24, makeBombPng, makeImage } from '../../test/fixtures/images.ts';
import {
  chunkedBody,
  redirectTo,
  serveBytes,
  slowDrip,
  startLoopbackServer,
  type LoopbackServer,
} from '../../test/fixtures/loopback-server.ts';
import { ApiError, type ErrorCode } from '../errors/index.ts';
import { createReferenceResolver, type ReferenceResolver } from './resolve-image-reference.ts';

const P = 'inputs.referenceImages';

function failsWith(code: ErrorCode, parameter: string, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ApiError, `expected ApiError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.equal(error.details.parameter, parameter);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

const dataUri = (bytes: Uint8Array, type = 'image/png') => `data:${type};base64,${Buffer.from(bytes).toString('base64')}`;

describe('reference resolver', () => {
  let server: LoopbackServer;
  let resolver: ReferenceResolver;
  let strict: ReferenceResolver;
  const stored = new Map<string, Uint8Array>();
  const storedUuid = '0b6a4a3e-5f47-4d8e-9c3a-2f0e6d1c9a10';
  let png: Buffer;
  let jpg: Buffer;

  before(async () => {
    png = await makeImage(640, 480, 'png');
    jpg = await makeImage(480, 640, 'jpg');
    stored.set(storedUuid, await makeImage(512, 512, 'webp'));
    server = await startLoopbackServer({
      '/a.png': serveBytes(png, 'image/png'),
      '/a.jpg': serveBytes(jpg, 'image/jpeg'),
      '/a.webp': serveBytes(await makeImage(500, 400, 'webp'), 'image/webp'),
      '/no-type.png': serveBytes(png, ''),
      '/rotated.jpg': serveBytes(await makeImage(600, 400, 'jpg', { orientation: 8 }), 'image/jpeg'),
      '/r1': redirectTo('/a.png'),
      '/r2': redirectTo('/r1'),
      '/r3': redirectTo('/r2'),
      '/r4': redirectTo('/r3'),
      '/drip': slowDrip(40),
      '/big': chunkedBody(2 * 1024 * 1024),
      '/page.html': serveBytes(Buffer.from('<!doctype html><p>hi</p>'), 'text/html; charset=utf-8'),
      '/bomb.png': serveBytes(makeBombPng(), 'image/png'),
      '/small.png': serveBytes(await makeImage(200, 200, 'png'), 'image/png'),
      '/wide.png': serveBytes(await makeImage(900, 300, 'png'), 'image/png'),
      '/hang': () => {
        /* never answers */
      },
    });
    const deps = {
      loadStoredImage: async (uuid: string) => stored.get(uuid),
      maxBytes: 1024 * 1024,
      connectTimeoutMs: 500,
      totalTimeoutMs: 1_000,
    };
    resolver = createReferenceResolver({ ...deps, allowPrivateUrls: true });
    strict = createReferenceResolver({ ...deps, allowPrivateUrls: false });
  });
  after(async () => {
    await Promise.all([resolver.close(), strict.close()]);
    await server.close();
  });

  it('downloads JPG, PNG and WEBP', async () => {
    const [a, b, c, d] = await resolver.resolveList(
      ['/a.png', '/a.jpg', '/a.webp', '/no-type.png'].map((p) => server.url(p)),
      P,
    );
    assert.deepEqual([a?.encoded.format, a?.pixels.width, a?.pixels.height], ['png', 640, 480]);
    assert.deepEqual([b?.encoded.format, b?.pixels.width, b?.pixels.height], ['jpg', 480, 640]);
    assert.deepEqual([c?.encoded.format, c?.pixels.width], ['webp', 500]);
    assert.equal(d?.encoded.format, 'png');
  });

  it('resolves every form in one task: UUID, URL, data URI, bare base64', async () => {
    const images = await resolver.resolveList(
      [storedUuid.toUpperCase(), server.url('/a.jpg'), dataUri(png), Buffer.from(jpg).toString('base64')],
      P,
    );
    assert.deepEqual(
      images.map((i) => [i.encoded.format, i.pixels.width, i.pixels.height]),
      [['webp', 512, 512], ['jpg', 480, 640], ['png', 640, 480], ['jpg', 480, 640]],
    );
  });

  it('fetches the same URL once per task', async () => {
    const url = server.url('/a.webp?dedupe');
    const images = await resolver.resolveList([url, url, server.url('/a.png')], P);
    assert.equal(images.length, 3);
    assert.equal(images[0], images[1]);
    assert.equal(server.hits('/a.webp?dedupe'), 1);
  });

  it('says so when a UUID is not stored', async () => {
    const missing = '11111111-2222-4333-8444-555555555555';
    await assert.rejects(
      resolver.resolveList([storedUuid, missing], P),
      failsWith('invalidReferenceImage', `${P}[1]`, /No image with imageUUID '11111111-2222-4333-8444-555555555555'/),
    );
  });

  it('refuses loopback URLs unless private URLs are allowed', async () => {
    await assert.rejects(
      strict.resolve(server.url('/a.png'), `${P}[0]`),
      failsWith('invalidReferenceImage', `${P}[0]`, /loopback address; only public addresses/),
    );
    await assert.rejects(
      strict.resolve(`http://localhost:${server.port}/a.png`, `${P}[3]`),
      failsWith('invalidReferenceImage', `${P}[3]`, /localhost resolves to/),
    );
  });

  it('follows 3 redirects, not 4', async () => {
    await resolver.resolve(server.url('/r3'), `${P}[0]`);
    await assert.rejects(resolver.resolve(server.url('/r4'), `${P}[2]`), failsWith('imageFetchFailed', `${P}[2]`, /redirects/));
  });

  it('reports a 404', async () => {
    await assert.rejects(
      resolver.resolveList([server.url('/a.png'), server.url('/missing.png')], P),
      failsWith('imageFetchFailed', `${P}[1]`, /^Could not download the image for 'inputs.referenceImages\[1\]' parameter\. The server answered HTTP 404\.$/),
    );
  });

  it('gives up on a slow-drip body at the total timeout', async () => {
    const started = performance.now();
    await assert.rejects(resolver.resolve(server.url('/drip'), `${P}[0]`), failsWith('imageFetchFailed', `${P}[0]`, /within 1000 ms/));
    assert.ok(performance.now() - started < 2_500);
  });

  it('refuses a body over the cap', async () => {
    await assert.rejects(resolver.resolve(server.url('/big'), `${P}[0]`), failsWith('invalidReferenceImage', `${P}[0]`, /larger than 1 MB/));
  });

  it('refuses a non-image body', async () => {
    await assert.rejects(resolver.resolve(server.url('/page.html'), `${P}[0]`), failsWith('invalidReferenceImage', `${P}[0]`, /returned text\/html, not an image/));
  });

  it('refuses an image that claims huge dimensions', async () => {
    await assert.rejects(resolver.resolve(server.url('/bomb.png'), `${P}[1]`), failsWith('invalidReferenceImage', `${P}[1]`, /30000×30000/));
  });

  it('refuses 200×200 and 3:1 images', async () => {
    await assert.rejects(resolver.resolve(server.url('/small.png'), `${P}[0]`), failsWith('invalidReferenceImage', `${P}[0]`, /200×200; each side must be at least 300 px/));
    await assert.rejects(resolver.resolve(server.url('/wide.png'), `${P}[0]`), failsWith('invalidReferenceImage', `${P}[0]`, /aspect ratio/));
  });

  it('applies EXIF orientation', async () => {
    const image = await resolver.resolve(server.url('/rotated.jpg'), `${P}[0]`);
    assert.deepEqual([image.pixels.width, image.pixels.height, image.encoded.width, image.encoded.height], [400, 600, 400, 600]);
  });

  it('refuses malformed data URIs and base64', async () => {
    const cases: Array<[string, RegExp]> = [
      ['data:image/png;base64', /no comma/],
      [`data:image/png,${'%89PNG'}`, /must be base64-encoded/],
      [`data:text/html;base64,${Buffer.from('<p>').toString('base64')}`, /declares 'text\/html', not an image type/],
      ['data:image/png;base64,iVBOR*w0KGgo=', /not hold valid base64/],
      ['data:image/png;base64,', /not hold valid base64/],
      ['this is not base64!', /not a UUID, a URL, a data URI or valid base64/],
      ['ftp://example.com/a.png', /Only http and https URLs/],
      ['   ', /empty/],
      [Buffer.from('hello world, not an image').toString('base64'), /not a supported image \(unknown format\)/],
      [dataUri(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'image/svg+xml'), /\(SVG\)/],
      [dataUri(await makeImage(400, 400, 'gif'), 'image/gif'), /GIF images are not accepted/],
    ];
    for (const [reference, pattern] of cases) {
      await assert.rejects(resolver.resolve(reference, `${P}[4]`), failsWith('invalidReferenceImage', `${P}[4]`, pattern));
    }
  });

  it('refuses inline data over the cap before decoding it', async () => {
    const huge = 'A'.repeat(2 * 1024 * 1024);
    await assert.rejects(resolver.resolve(huge, `${P}[0]`), failsWith('invalidReferenceImage', `${P}[0]`, /larger than 1 MB/));
  });

  it('fails fast on hosts that do not resolve (the seed example)', async () => {
    const seedStyle = [1, 2, 3, 4, 5].map((i) => `https://assets.kiln-test.invalid/assets/inputs/${i}.jpg`);
    const started = performance.now();
    await assert.rejects(strict.resolveList(seedStyle, P), (error: unknown) => {
      assert.ok(error instanceof ApiError && error.code === 'imageFetchFailed', String(error));
      assert.match(String(error.details.parameter), /^inputs\.referenceImages\[[0-4]\]$/);
      assert.match(error.message, /could not be resolved|in time/);
      return true;
    });
    assert.ok(performance.now() - started < 2_000);
  });

  it('fails the whole list at the first bad item without waiting for slow ones', async () => {
    const started = performance.now();
    await assert.rejects(resolver.resolveList([server.url('/hang'), 'not base64 !'], P), failsWith('invalidReferenceImage', `${P}[1]`));
    assert.ok(performance.now() - started < 500);
  });

  it('reports a cancelled task as cancelled', async () => {
    const controller = new AbortController();
    const pending = resolver.resolve(server.url('/hang'), `${P}[0]`, controller.signal);
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(pending, failsWith('taskCancelled', `${P}[0]`));
  });

  describe('resolveUpload', () => {
    it('accepts BMP and GIF and converts them to PNG', async () => {
      const fromBmp = await resolver.resolveUpload(dataUri(makeBmp24(320, 240), 'image/bmp'), 'image');
      assert.deepEqual([fromBmp.format, fromBmp.width, fromBmp.height], ['png', 320, 240]);
      const fromGif = await resolver.resolveUpload(Buffer.from(await makeImage(100, 80, 'gif')).toString('base64'), 'image');
      assert.deepEqual([fromGif.format, fromGif.width, fromGif.height], ['png', 100, 80]);
    });

    it('downloads URLs and reports problems as invalidImage on `image`', async () => {
      const fromUrl = await resolver.resolveUpload(server.url('/a.jpg'), 'image');
      assert.deepEqual([fromUrl.format, fromUrl.width, fromUrl.height], ['jpg', 480, 640]);
      await assert.rejects(resolver.resolveUpload(server.url('/page.html'), 'image'), failsWith('invalidImage', 'image', /not an image/));
      await assert.rejects(resolver.resolveUpload('data:image/png;base64,%%%', 'image'), failsWith('invalidImage', 'image'));
      await assert.rejects(resolver.resolveUpload(server.url('/missing'), 'image'), failsWith('imageFetchFailed', 'image', /404/));
    });
  });
});
