import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { adultScore, createSafetyClassifier, NSFW_CLASSES, type SafetyClassifier, type SafetyVerdict } from './safety-classifier.ts';
import { syntheticLandscape } from './synthetic-landscape.ts';

// The real model runs here (no stub): nsfwjs's MobileNetV2 on the WASM backend, in a worker.

function assertDistribution(verdict: SafetyVerdict): void {
  const entries = Object.entries(verdict.probabilities);
  assert.deepEqual(entries.map(([name]) => name).sort(), [...NSFW_CLASSES].sort());
  for (const [name, probability] of entries) {
    assert.ok(probability >= 0 && probability <= 1, `${name} = ${probability}`);
  }
  const sum = entries.reduce((total, [, probability]) => total + probability, 0);
  assert.ok(Math.abs(sum - 1) < 1e-3, `probabilities sum to ${sum}`);
  assert.ok(verdict.score >= 0 && verdict.score <= 1);
  assert.ok(verdict.ms >= verdict.inferenceMs && verdict.inferenceMs > 0);
}

function describeVerdict(label: string, verdict: SafetyVerdict): string {
  const probabilities = Object.entries(verdict.probabilities).map(([name, p]) => `${name}=${p.toFixed(4)}`);
  return `${label}: nsfw=${verdict.nsfw} score=${verdict.score.toFixed(4)} ${probabilities.join(' ')} (${verdict.ms.toFixed(0)} ms, inference ${verdict.inferenceMs.toFixed(0)} ms)`;
}

describe('safety classifier (default threshold 0.5 on Porn + Hentai)', () => {
  let classifier: SafetyClassifier;
  before(async () => {
    classifier = createSafetyClassifier();
    await classifier.warmUp();
  });
  after(() => classifier.close());

  test('benign raw, RGBA and encoded images are not flagged; the five probabilities form a distribution', async (t) => {
    const landscape = syntheticLandscape(1248, 832, 1);
    const rgba = syntheticLandscape(640, 480, 2, 4);
    const jpeg = await sharp(syntheticLandscape(800, 600, 3).data, { raw: { width: 800, height: 600, channels: 3 } }).jpeg().toBuffer();
    const png = await sharp({ create: { width: 512, height: 512, channels: 3, background: { r: 40, g: 120, b: 200 } } })
      .composite([{ input: Buffer.from('<svg width="512" height="512"><circle cx="256" cy="200" r="80" fill="#fc3"/><rect y="330" width="512" height="182" fill="#3a6"/></svg>') }])
      .png()
      .toBuffer();
    const cases = [
      ['raw RGB landscape 1248×832', landscape],
      ['raw RGBA landscape 640×480', rgba],
      ['JPEG bytes 800×600', new Uint8Array(jpeg)],
      ['EncodedImage PNG 512×512', { bytes: new Uint8Array(png), format: 'png', width: 512, height: 512 }],
    ] as const;
    for (const [label, image] of cases) {
      const verdict = await classifier.classify(image);
      t.diagnostic(describeVerdict(label, verdict));
      assertDistribution(verdict);
      assert.equal(verdict.nsfw, false, label);
      assert.equal(verdict.score, adultScore(verdict.probabilities, ['Porn', 'Hentai']));
    }
  });

  test('the same input gives the same probabilities', async () => {
    const image = syntheticLandscape(900, 600, 4);
    const first = await classifier.classify(image);
    const second = await classifier.classify(image);
    assert.deepEqual(second.probabilities, first.probabilities);
    assert.equal(second.score, first.score);
  });

  test('concurrent checks queue for the one worker and each gets its own answer', async () => {
    const images = [5, 6, 7, 8].map((seed) => syntheticLandscape(320 + seed * 16, 240, seed));
    const sequential = [];
    for (const image of images) sequential.push((await classifier.classify(image)).probabilities);
    const concurrent = await Promise.all(images.map((image) => classifier.classify(image)));
    assert.deepEqual(
      concurrent.map((verdict) => verdict.probabilities),
      sequential,
    );
  });

  test('an aborted check rejects with the signal reason and the others still finish', async () => {
    const image = syntheticLandscape(320, 240, 9);
    const controller = new AbortController();
    const checks = [classifier.classify(image), classifier.classify(image, { signal: controller.signal }), classifier.classify(image)];
    controller.abort(new Error('task cancelled'));
    const [first, aborted, third] = await Promise.allSettled(checks);
    assert.equal(first?.status, 'fulfilled');
    assert.equal(aborted?.status, 'rejected');
    assert.equal((aborted as PromiseRejectedResult).reason.message, 'task cancelled');
    assert.equal(third?.status, 'fulfilled');
  });

  test('a malformed raw image is rejected before it reaches the worker', async () => {
    await assert.rejects(classifier.classify({ data: new Uint8Array(10), width: 4, height: 4, channels: 3 }), TypeError);
  });
});

test('threshold 0 flags every image', async (t) => {
  const strict = createSafetyClassifier({ threshold: 0 });
  try {
    for (const seed of [11, 12]) {
      const verdict = await strict.classify(syntheticLandscape(400, 300, seed));
      t.diagnostic(describeVerdict(`threshold 0, seed ${seed}`, verdict));
      assertDistribution(verdict);
      assert.equal(verdict.nsfw, true);
    }
  } finally {
    await strict.close();
  }
  await assert.rejects(strict.classify(syntheticLandscape(8, 8)), /closed/);
});

test('options are checked', () => {
  assert.throws(() => createSafetyClassifier({ threshold: 1.5 }), RangeError);
  assert.throws(() => createSafetyClassifier({ threshold: Number.NaN }), RangeError);
  assert.throws(() => createSafetyClassifier({ adultClasses: [] }), RangeError);
  assert.throws(() => createSafetyClassifier({ adultClasses: ['Porn', 'Nope' as 'Porn'] }), RangeError);
  assert.deepEqual(createSafetyClassifier({ adultClasses: ['Porn', 'Sexy', 'Porn'] }).adultClasses, ['Porn', 'Sexy']);
});

test('adultScore sums the chosen classes', () => {
  const probabilities = { Drawing: 0.1, Hentai: 0.2, Neutral: 0.3, Porn: 0.25, Sexy: 0.15 };
  assert.equal(adultScore(probabilities), 0.45);
  assert.equal(adultScore(probabilities, ['Porn', 'Hentai', 'Sexy']), 0.6);
});

/** This file's own extension: `.ts` from the sources, `.js` in the compiled suite (whose siblings are compiled too). */
const EXT = path.extname(fileURLToPath(import.meta.url));

/** Runs a script in a fresh node process (through tsx from the sources) and reports how it ended. */
function runScript(source: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(EXT === '.ts' ? ['--import', 'tsx'] : []), '--input-type=module', '--eval', source], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    // A process that never exits is what this catches: the bound is only there to end the test,
    // and it leaves room for loading the model in two processes on a loaded machine.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const imports = `
import { createSafetyClassifier } from ${JSON.stringify(new URL(`./safety-classifier${EXT}`, import.meta.url).href)};
import { syntheticLandscape } from ${JSON.stringify(new URL(`./synthetic-landscape${EXT}`, import.meta.url).href)};
`;

test('the process exits after close(), and an idle classifier never holds it open', async () => {
  const [closed, idle] = await Promise.all([
    runScript(`${imports}
      const classifier = createSafetyClassifier();
      const verdict = await classifier.classify(syntheticLandscape(64, 48));
      await classifier.close();
      console.log('closed', verdict.nsfw);`),
    runScript(`${imports}
      const classifier = createSafetyClassifier();
      const verdict = await classifier.classify(syntheticLandscape(64, 48));
      console.log('idle', verdict.nsfw);`),
  ]);
  assert.deepEqual([closed.code, closed.stdout.trim()], [0, 'closed false'], closed.stderr);
  assert.deepEqual([idle.code, idle.stdout.trim()], [0, 'idle false'], idle.stderr);
});
