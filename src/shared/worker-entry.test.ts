import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { compiledTwin, threadFlags, workerEntry } from './worker-entry.ts';

const POOL_MODULE = new URL('../engines/studio/worker-pool.ts', import.meta.url).href;

test('compiledTwin maps an entry beside a module under src/ to the same folder of the build, and only to a file that is there', (t) => {
  const build = mkdtempSync(path.join(tmpdir(), 'kiln-twin-'));
  t.after(() => rmSync(build, { recursive: true, force: true }));
  assert.equal(compiledTwin(POOL_MODULE, 'render-worker', build), undefined, 'no file there yet');
  mkdirSync(path.join(build, 'engines', 'studio'), { recursive: true });
  writeFileSync(path.join(build, 'engines', 'studio', 'render-worker.js'), '');
  assert.equal(compiledTwin(POOL_MODULE, 'render-worker', build)?.href, pathToFileURL(path.join(build, 'engines', 'studio', 'render-worker.js')).href);
  assert.equal(compiledTwin(POOL_MODULE, 'render-worker', ''), undefined, 'unset: no twin');
  // A module outside src/ has no place in a build of src/.
  writeFileSync(path.join(build, 'render-worker.js'), '');
  const outside = pathToFileURL(path.join(fileURLToPath(new URL('../../test/', import.meta.url)), 'x.ts')).href;
  assert.equal(compiledTwin(outside, 'render-worker', build), undefined);
});

test('threadFlags keeps the flags a compiled thread can use and drops loaders, eval input and V8 flags', () => {
  assert.deepEqual(
    threadFlags(['--import', 'tsx', '--enable-source-maps', '--import=tsx', '--input-type=module', '--eval', '--max-old-space-size=512', '--trace-warnings', '--unhandled-rejections=strict', '--conditions=dev']),
    ['--enable-source-maps', '--trace-warnings', '--unhandled-rejections=strict', '--conditions=dev'],
  );
  assert.deepEqual(threadFlags([]), []);
});

test('from the sources, a worker starts from its twin when KILN_WORKER_BUILD names a build, else through the tsx bootstrap; both answer', async (t) => {
  // A twin that is a real module with the entry's file name: the thread must run it, with no loader.
  const build = mkdtempSync(path.join(tmpdir(), 'kiln-twin-'));
  t.after(() => rmSync(build, { recursive: true, force: true }));
  mkdirSync(path.join(build, 'engines', 'studio'), { recursive: true });
  writeFileSync(
    path.join(build, 'engines', 'studio', 'render-worker.js'),
    "import { parentPort } from 'node:worker_threads';\nparentPort.postMessage({ twin: true, loaders: process.execArgv });\n",
  );
  const saved = process.env.KILN_WORKER_BUILD;
  t.after(() => (saved === undefined ? delete process.env.KILN_WORKER_BUILD : (process.env.KILN_WORKER_BUILD = saved)));
  process.env.KILN_WORKER_BUILD = build;
  const twin = workerEntry(POOL_MODULE, 'render-worker');
  assert.equal(twin.eval, false);
  assert.equal(twin.compiled, true);
  assert.deepEqual(twin.execArgv, threadFlags(process.execArgv));
  const worker = new Worker(twin.filename, { eval: twin.eval, execArgv: twin.execArgv! });
  const message = await new Promise<{ twin: boolean; loaders: string[] }>((resolve, reject) => worker.once('message', resolve).once('error', reject));
  await worker.terminate();
  assert.equal(message.twin, true);
  assert.ok(!message.loaders.some((flag) => flag.includes('tsx')), `the thread runs without tsx: ${message.loaders.join(' ')}`);

  // No twin for this entry: the bootstrap, which registers tsx in the thread itself.
  const other = workerEntry(POOL_MODULE, 'no-such-worker');
  assert.equal(other.eval, true);
  assert.equal(other.compiled, false);
  assert.deepEqual(other.execArgv, []);
  delete process.env.KILN_WORKER_BUILD;
  assert.equal(workerEntry(POOL_MODULE, 'render-worker').eval, true, 'unset: the bootstrap');
});
