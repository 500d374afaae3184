import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { threadFlags, workerEntry } from './worker-entry.ts';

/** This file's own extension: `.ts` from the sources, `.js` in the compiled suite. */
const EXT = path.extname(fileURLToPath(import.meta.url));

test('threadFlags: the parent\'s flags inherited, unless the main script was --eval\'d; then without its flags, each with its value', () => {
  const parent = ['--import', 'tsx', '--enable-source-maps', '--input-type=module', '--eval', 'import "x"', '-p', '1', '--conditions=dev', '--input-type', 'commonjs', '-e', 'y'];
  assert.deepEqual(threadFlags(parent), ['--import', 'tsx', '--enable-source-maps', '--conditions=dev']);
  assert.equal(threadFlags(['--max-old-space-size=256', '--import', 'tsx', '--enable-source-maps']), undefined);
  assert.equal(threadFlags([]), undefined);
});

test('workerEntry: the sibling .js file beside a compiled module, a tsx bootstrap with no flags beside a .ts one', () => {
  const compiled = workerEntry('file:///app/dist/engines/studio/worker-pool.js', 'render-worker');
  assert.equal(String(compiled.filename), 'file:///app/dist/engines/studio/render-worker.js');
  assert.deepEqual([compiled.eval, compiled.compiled], [false, true]);
  assert.deepEqual(compiled.execArgv, threadFlags(process.execArgv));
  const source = workerEntry('file:///app/src/engines/studio/worker-pool.ts?x=1', 'render-worker');
  assert.deepEqual([source.eval, source.compiled, source.execArgv], [true, false, []]);
  assert.match(String(source.filename), /register\(\).*import\("file:\/\/\/app\/src\/engines\/studio\/render-worker\.ts"\)/);
});

/**
 * Starts `node <flags> --input-type=module --eval <script>` or, with `file`, `node <flags> <file>`
 * holding the script: it starts the compiled worker `probe-worker.js` of `dir` through
 * workerEntry and prints the flags the worker got. Resolves with the exit code and output.
 */
async function startProbe(dir: string, flags: string[], asFile: boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  writeFileSync(path.join(dir, 'probe-worker.js'), "import { parentPort } from 'node:worker_threads';\nparentPort.postMessage(process.execArgv);\n");
  const moduleUrl = pathToFileURL(path.join(dir, 'starter.js')).href;
  const source = `
    import { Worker } from 'node:worker_threads';
    import { workerEntry } from ${JSON.stringify(new URL(`./worker-entry${EXT}`, import.meta.url).href)};
    const entry = workerEntry(${JSON.stringify(moduleUrl)}, 'probe-worker');
    const worker = new Worker(entry.filename, { eval: entry.eval, ...(entry.execArgv ? { execArgv: entry.execArgv } : {}) });
    worker.once('message', (flags) => { console.log(JSON.stringify(flags)); void worker.terminate(); });
    worker.once('error', (error) => { console.error(error.message); process.exitCode = 3; });`;
  const script = path.join(dir, 'probe-main.mjs');
  if (asFile) writeFileSync(script, source);
  const loader = EXT === '.ts' ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...loader, ...flags, ...(asFile ? [script] : ['--input-type=module', '--eval', source])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

test('a compiled worker starts under a main script --eval\'d with --input-type=module, and under V8 flags a thread cannot be given', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-worker-entry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const evaluated = await startProbe(dir, [], false);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const flags = JSON.parse(evaluated.stdout) as string[];
  assert.ok(!flags.some((flag) => flag.startsWith('--input-type') || flag === '--eval'), `the thread got: ${flags.join(' ')}`);
  // `node --max-old-space-size=… dist/main.js`: passed to a thread explicitly, Node would refuse it.
  const sized = await startProbe(dir, ['--max-old-space-size=256', '--enable-source-maps'], true);
  assert.equal(sized.code, 0, sized.stderr);
  assert.ok((JSON.parse(sized.stdout) as string[]).includes('--enable-source-maps'), sized.stdout);
});
