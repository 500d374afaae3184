/**
 * The production build, end to end: `npm run build` into a scratch folder, then the built server
 * as a child process of plain `node` (no TypeScript loader), one small studio image over REST
 * with the safety check on (so both kinds of worker thread, the studio renderers and the safety
 * classifier, start from compiled .js), and SIGTERM with a clean exit.
 *
 * The scratch output folder sits at the top of the repository (`.kiln-test-build-*`, git-ignored),
 * where dist/ is, not in the system temp dir: the built modules find their packages by walking up
 * to node_modules, and read package.json two folders up, as from dist/. A developer's dist/ is
 * never touched.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { REPO_ROOT } from './helpers/repo-root.ts';

const ROOT = REPO_ROOT;
const KEY = 'kiln_build_test_key_0123456789abcdefghij';

const scratch: string[] = [];
after(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Files under `dir` that tsc does not compile (anything but .ts), relative to it. */
function dataFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return dataFiles(path.join(dir, entry.name), path.join(prefix, entry.name));
    return entry.name.endsWith('.ts') ? [] : [path.join(prefix, entry.name)];
  });
}

/** Runs a child to its end, collecting its output. */
function run(command: string, args: readonly string[], options: { cwd: string }): Promise<Exit & { output: string }> {
  const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal, output }));
  });
}

/** Resolves with the server's URL once it logs that it listens; rejects if it exits first. */
function listening(child: ChildProcess, exited: Promise<Exit>, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    // Generous: the suite runs four files at once on two cores, and the start loads the safety model and warms the renderers.
    const timer = setTimeout(() => reject(new Error(`the built server did not start within 60 s: ${stderr()}`)), 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (const line of buffer.split('\n')) {
        if (!line.includes('kiln is listening')) continue;
        clearTimeout(timer);
        const { url } = JSON.parse(line) as { url: string };
        resolve(url.replace('localhost', '127.0.0.1'));
      }
    });
    void exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`the built server exited early (${exit.code ?? exit.signal}): ${stderr()}`));
    });
  });
}

test('the compiled build serves a studio image with plain node and stops cleanly on SIGTERM', { timeout: 240_000 }, async () => {
  const outDir = await mkdtemp(path.join(ROOT, '.kiln-test-build-'));
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-test-build-data-'));
  scratch.push(outDir, dataDir);

  // npm sets npm_execpath while it runs `npm test`; running it with this Node keeps the build on
  // the Node version under test (CI runs the suite on 20 and 22).
  const npm = process.env.npm_execpath;
  const args = ['run', 'build', '--', '--outDir', outDir];
  const build = npm ? await run(process.execPath, [npm, ...args], { cwd: ROOT }) : await run('npm', args, { cwd: ROOT });
  assert.equal(build.code, 0, `npm run build failed:\n${build.output}`);
  for (const file of ['main.js', 'main.js.map', 'engines/studio/render-worker.js', 'imaging/safety/safety-worker.js']) {
    assert.ok(existsSync(path.join(outDir, file)), `the build has ${file}`);
  }
  // Data files read at run time from beside the code (the studio lexicon, the playground's pages).
  for (const file of dataFiles(path.join(ROOT, 'src'))) {
    assert.ok(existsSync(path.join(outDir, file)), `the build has src/${file}`);
  }
  assert.ok(!existsSync(path.join(outDir, 'engines/studio/studio-engine.test.js')), 'tests are not built');

  // Plain node, as `npm start` (bin/kiln) runs it: no --import, and no loader smuggled in through NODE_OPTIONS.
  const { NODE_OPTIONS: _ignored, ...env } = process.env;
  const server = spawn(process.execPath, ['--enable-source-maps', path.join(outDir, 'main.js'), 'serve'], {
    cwd: ROOT,
    env: { ...env, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_API_KEYS: KEY, KILN_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<Exit>((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  server.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let stdout = '';
  server.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  try {
    const url = await listening(server, exited, () => stderr);
    // The start collected its garbage before it listened, after the warm-up (which on a loaded
    // machine may pass its budget and log its end only later).
    const messages = stdout.split('\n').flatMap((line) => (line.startsWith('{') ? [(JSON.parse(line) as { msg?: string }).msg] : []));
    const warmed = messages.indexOf('engines warmed up');
    const collected = messages.indexOf('start-up garbage collected');
    const listens = messages.indexOf('kiln is listening');
    assert.ok(collected >= 0 && collected < listens && (warmed < 0 || warmed > listens || warmed < collected), messages.join(' | '));
    const taskUUID = randomUUID();
    const response = await fetch(`${url}/v1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify([
        {
          taskType: 'imageInference',
          taskUUID,
          model: 'kiln:studio@1',
          positivePrompt: 'a lighthouse on sea cliffs at sunset, gulls',
          width: 256,
          height: 256,
          outputType: 'base64Data',
          outputFormat: 'PNG',
          safety: { checkContent: true },
        },
      ]),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await response.json()) as { data?: { taskUUID: string; imageBase64Data?: string; NSFWContent?: boolean }[] };
    assert.equal(response.status, 200, JSON.stringify(body));
    const item = body.data?.[0];
    assert.equal(item?.taskUUID, taskUUID);
    // NSFWContent is only reported when the safety classifier (its own worker thread) ran.
    assert.equal(item?.NSFWContent, false);
    const image = await sharp(Buffer.from(item?.imageBase64Data ?? '', 'base64')).raw().toBuffer({ resolveWithObject: true });
    assert.equal(image.info.width, 256);
    assert.equal(image.info.height, 256);
    assert.equal(image.data.length, 256 * 256 * image.info.channels);

    server.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  }
});
