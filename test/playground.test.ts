import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { browserProblem, CHROMIUM_ARGS, CHROMIUM_PATH } from './helpers/browser.ts';
import { startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

const run = promisify(execFile);
// Browser globals inside page callbacks (the project compiles without the DOM lib); module-scoped.
declare const document: any;
declare const navigator: any;
declare const window: any;
// docs/playground.png is rewritten only on request, so a test run leaves the tree clean:
// KILN_UPDATE_SCREENSHOT=1 node --import tsx --test test/playground.test.ts
const SCREENSHOT = process.env.KILN_UPDATE_SCREENSHOT === '1' ? path.join(REPO_ROOT, 'docs', 'playground.png') : undefined;
const SIZE = { width: 512, height: 320 };

describe('the playground page', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test('browsers get the page at /, other clients the JSON description', async () => {
    const page = await fetch(`${server.url}/`, { headers: { accept: 'text/html,application/xhtml+xml' } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /<title>Kiln playground<\/title>/);
    const json = await fetch(`${server.url}/`);
    assert.match(json.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(((await json.json()) as { name: string }).name, 'Kiln');
  });

  test('first load is well under 200 KB of JS and CSS, gzipped, all from Kiln', async () => {
    const html = await (await fetch(`${server.url}/`, { headers: { accept: 'text/html' } })).text();
    // Everything the page loads: its stylesheet and scripts, and the modules they import.
    const pending = [...html.matchAll(/(?:src|href)="(\/playground\/[^"]+)"/g)].map((m) => m[1]!);
    const assets: string[] = [];
    let total = 0;
    while (pending.length > 0) {
      const asset = pending.shift()!;
      if (assets.includes(asset)) continue;
      assets.push(asset);
      const response = await fetch(`${server.url}${asset}`);
      assert.equal(response.status, 200, asset);
      const text = await response.text();
      total += gzipSync(Buffer.from(text), { level: 9 }).length;
      for (const m of text.matchAll(/^import [^'"]*'\.\/([^']+)'/gm)) pending.push(`/playground/${m[1]}`);
    }
    process.stdout.write(`# playground first load: ${assets.join(', ')} = ${(total / 1024).toFixed(1)} KB gzipped\n`);
    assert.ok(total < 200 * 1024, `${total} bytes`);
  });

  describe('in headless Chromium', { skip: browserProblem() }, () => {
    let browser: import('playwright-core').Browser;
    before(async () => {
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    });
    after(() => browser?.close());

    test('key, prompt, a reference by upload, Generate: two images, a curl that reproduces them, errors by their field', async () => {
      const context = await browser.newContext({ viewport: { width: 1360, height: 1000 }, deviceScaleFactor: 1 });
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      await page.goto(`${server.url}/`);
      await page.waitForSelector('body[data-ready=true]');

      await page.getByLabel('API key').fill(TEST_KEY);
      await page.getByLabel('Model').selectOption('kiln:studio@1');
      await page.getByLabel('Width').fill(String(SIZE.width));
      await page.getByLabel('Height').fill(String(SIZE.height));
      await page.getByLabel('Number of images', { exact: true }).fill('2');
      await page.getByLabel(/^Seed/).fill('4242');
      await page.getByLabel('Format').selectOption('PNG');
      await page.getByLabel('Prompt').fill('a lighthouse on a jade sea at dusk, warm windows');
      const reference = await sharp({ create: { width: 480, height: 320, channels: 3, background: '#d98b3a' } }).png().toBuffer();
      await page.setInputFiles('#refFile', { name: 'sunset.png', mimeType: 'image/png', buffer: reference });
      await page.waitForSelector('#refs li img');
      assert.equal(await page.locator('#refCount').textContent(), '1/10');

      await page.getByRole('button', { name: 'Generate' }).click();
      await page.waitForFunction(
        () =>
          document.querySelectorAll('#results .card:not(.pending) img').length === 2 &&
          [...document.querySelectorAll('#results img')].every((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth > 0),
        undefined,
        { timeout: 60_000 },
      );

      // The images decode to the chosen size.
      const sources = await page.locator('#results img').evaluateAll((imgs) => imgs.map((img) => (img as unknown as { src: string }).src));
      for (const src of sources) {
        const bytes = Buffer.from(await (await fetch(src)).arrayBuffer());
        const meta = await sharp(bytes).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ['png', SIZE.width, SIZE.height]);
      }
      const pageSeeds = (await page.locator('#results .seed').allTextContents()).map(Number).sort();
      assert.deepEqual(pageSeeds, [4242, 4243]);
      assert.equal(await page.locator('#history .entry').count(), 1);

      if (SCREENSHOT) {
        await mkdir(path.dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
      }

      // The request as sent, and the curl command the page copies.
      await page.getByRole('tab', { name: 'JSON' }).click();
      const sent = JSON.parse((await page.locator('#snippetCode').textContent()) ?? '') as Record<string, unknown>[];
      assert.equal(sent.length, 1);
      assert.equal((sent[0]!.inputs as { referenceImages: string[] }).referenceImages.length, 1);
      await page.getByRole('button', { name: 'Copy as curl' }).click();
      const curl = (await page.evaluate(() => navigator.clipboard.readText())) as string;
      assert.match(curl, /^curl /m);
      assert.doesNotMatch(curl, new RegExp(TEST_KEY), 'the key is not written into the snippet');

      // Its body is the page's request, with a fresh taskUUID.
      const captured = await run('bash', ['-c', `curl() { for a in "$@"; do printf '%s\\0' "$a"; done; }\n${curl}`], { env: { ...process.env, KILN_KEY: TEST_KEY } });
      const args = captured.stdout.split('\0');
      const body = JSON.parse(args[args.indexOf('-d') + 1]!) as Record<string, unknown>[];
      assert.match(String(body[0]!.taskUUID), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.notEqual(body[0]!.taskUUID, sent[0]!.taskUUID);
      assert.deepEqual({ ...body[0], taskUUID: 0 }, { ...sent[0], taskUUID: 0 });

      // Run for real, it makes the same images.
      const answer = JSON.parse((await run('bash', ['-c', curl], { env: { ...process.env, KILN_KEY: TEST_KEY } })).stdout) as { data: { seed: number; imageURL: string }[] };
      assert.deepEqual(answer.data.map((item) => item.seed).sort(), pageSeeds);
      for (const item of answer.data) {
        const meta = await sharp(Buffer.from(await (await fetch(item.imageURL)).arrayBuffer())).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ['png', SIZE.width, SIZE.height]);
      }

      // An invalid field: the server's error appears next to that field.
      await page.getByLabel(/^Quality/).fill('5');
      await page.getByRole('button', { name: 'Generate' }).click();
      const error = page.locator('#field-outputQuality .error');
      await error.waitFor({ state: 'visible' });
      assert.match((await error.textContent()) ?? '', /outputQuality/);
      assert.equal(await page.getByLabel(/^Quality/).getAttribute('aria-invalid'), 'true');
      assert.equal(await page.locator('#general-error').textContent(), '');
      // The images of the previous run stay.
      assert.equal(await page.locator('#results .card').count(), 2);

      // History: re-run the stored request (quality back to 95), then use a result as a reference.
      await page.getByRole('button', { name: 'Re-run' }).first().click();
      await page.waitForFunction(() => document.querySelectorAll('#history .entry').length === 2, undefined, { timeout: 60_000 });
      assert.equal(await page.getByLabel(/^Quality/).inputValue(), '95');
      assert.deepEqual((await page.locator('#results .seed').allTextContents()).map(Number).sort(), pageSeeds);
      await page.locator('#results .card').first().getByRole('button', { name: 'Use as reference' }).click();
      assert.equal(await page.locator('#refCount').textContent(), '2/10');
      assert.deepEqual(problems, []);
      await context.close();
    });

    test('an element by file upload: sent by its uploaded UUID as inputs.elements[0].frontalImage, an image comes back', async () => {
      const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      await page.goto(`${server.url}/`);
      await page.waitForSelector('body[data-ready=true]');
      await page.getByLabel('API key').fill(TEST_KEY);
      await page.getByLabel('Model').selectOption('kiln:studio@1');
      await page.getByLabel('Width').fill('256');
      await page.getByLabel('Height').fill('256');
      await page.getByLabel('Number of images', { exact: true }).fill('1');
      await page.getByLabel('Prompt').fill('<<<element_1>>> in a sunlit garden');

      // Generating with an element but no frontal image: the error sits next to the Elements section.
      await page.getByRole('button', { name: 'Add element' }).click();
      assert.equal(await page.locator('#elementCount').textContent(), '1/3');
      await page.getByRole('button', { name: 'Generate' }).click();
      await page.locator('#elements-error').waitFor({ state: 'visible' });
      assert.match((await page.locator('#elements-error').textContent()) ?? '', /frontal image/);

      const face = await sharp({ create: { width: 320, height: 400, channels: 3, background: '#c98f6b' } }).png().toBuffer();
      await page.getByLabel('Choose frontal image for element 1').setInputFiles({ name: 'face.png', mimeType: 'image/png', buffer: face });
      await page.getByRole('img', { name: 'Element 1 frontal image: face.png' }).waitFor();
      // A second element can be added and removed by keyboard.
      await page.getByRole('button', { name: 'Add element' }).focus();
      await page.keyboard.press('Enter');
      assert.equal(await page.locator('#elements .element').count(), 2);
      await page.getByRole('button', { name: 'Remove element 2' }).focus();
      await page.keyboard.press('Enter');
      assert.equal(await page.locator('#elements .element').count(), 1);

      await page.getByRole('button', { name: 'Generate' }).click();
      await page.waitForFunction(
        () => [...document.querySelectorAll('#results .card:not(.pending) img')].some((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth > 0),
        undefined,
        { timeout: 60_000 },
      );
      assert.equal(await page.locator('#elements-error').textContent(), '');
      const src = await page.locator('#results img').first().getAttribute('src');
      const meta = await sharp(Buffer.from(await (await fetch(src!)).arrayBuffer())).metadata();
      assert.deepEqual([meta.width, meta.height], [256, 256]);

      await page.getByRole('tab', { name: 'JSON' }).click();
      const sent = JSON.parse((await page.locator('#snippetCode').textContent()) ?? '') as { inputs?: { elements?: { frontalImage: string }[] } }[];
      const elements = sent[0]!.inputs?.elements ?? [];
      assert.equal(elements.length, 1);
      assert.match(elements[0]!.frontalImage, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'the frontal image is sent by its imageUpload UUID');
      for (const tab of ['curl', '@runware/sdk-js', 'AI SDK']) {
        await page.getByRole('tab', { name: tab }).click();
        assert.match((await page.locator('#snippetCode').textContent()) ?? '', new RegExp(elements[0]!.frontalImage), tab);
      }
      assert.deepEqual(problems, []);
      await context.close();
    });

    test('reference limit, a bad key next to its field, phone width', async () => {
      const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
      const page = await context.newPage();
      await page.goto(`${server.url}/`);
      await page.waitForSelector('body[data-ready=true]');
      const file = await sharp({ create: { width: 320, height: 320, channels: 3, background: '#3a7bd9' } }).png().toBuffer();
      await page.setInputFiles('#refFile', Array.from({ length: 11 }, (_, i) => ({ name: `r${i}.png`, mimeType: 'image/png', buffer: file })));
      // The eleventh file is refused: ten thumbnails and the limit named next to the field.
      await page.waitForFunction(() => document.querySelectorAll('#refs li').length === 10 && /At most 10/.test(document.getElementById('references-error')?.textContent ?? ''));
      assert.equal(await page.locator('#refFile').isDisabled(), true);
      await page.getByRole('button', { name: 'Remove reference 1', exact: true }).click();
      assert.equal(await page.locator('#refs li').count(), 9);

      await page.getByLabel('API key').fill('not-a-key');
      await page.getByLabel('Prompt').fill('x');
      await page.getByLabel('Prompt').press('Control+Enter');
      await page.locator('#apiKey-error').waitFor({ state: 'visible' });
      assert.match((await page.locator('#apiKey-error').textContent()) ?? '', /API key/);
      // Nothing overflows sideways on a phone.
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);
      await context.close();
    });
  });
});
