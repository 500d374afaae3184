/**
 * The `kiln` client commands (generate, batch, tasks) as a person runs them: a child process
 * of `src/main.ts` in a temporary folder, against a real Kiln on loopback over the WebSocket
 * API. The studio engine makes the pictures; where a task must stay in flight (Ctrl-C, a batch
 * killed halfway, a task read while it runs) a gated test engine holds its images until the
 * test releases them.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { WebSocket } from 'ws';
import { startKiln, type Kiln } from '../src/compose.ts';
import { loadConfig } from '../src/config/config.ts';
import type { GenerateCall, GenerateResult, GeneratedImage, ImageEngine } from '../src/engines/spec/image-engine.ts';
import { kilnNodeArgs } from './helpers/compiled-kiln.ts';
import { post, startTestServer, TEST_KEY, type TestServer } from './helpers/kiln-server.ts';

const STUDIO = 'kiln:studio@1';

interface Finished {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

/** The environment of a person's shell, without any key or server the test runner may carry. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('KILN_') && name !== 'RUNWARE_API_KEY') env[name] = value;
  }
  return { ...env, ...extra };
}

/** Starts `kiln <args>` as a child process. */
function kiln(args: readonly string[], options: { cwd: string; env?: Record<string, string> }): { child: ChildProcess; done: Promise<Finished>; output: () => string } {
  const child = spawn(process.execPath, [...kilnNodeArgs(), ...args], { cwd: options.cwd, env: cleanEnv(options.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const done = new Promise<Finished>((resolve) => child.on('close', (code) => resolve({ code, out, err })));
  return { child, done, output: () => out + err };
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * A test engine for `kiln:studio@1` that hands out a plain image per slot only while its
 * budget lasts; past it each image waits for `allow`, or for the task's abort.
 */
class GatedEngine implements ImageEngine {
  readonly name = 'gated';
  readonly maxImagesPerCall = 1;
  readonly concurrency = 8;
  budget = 0;
  /** Images waiting for budget right now. */
  waiting = 0;
  produced = 0;
  private wake: (() => void)[] = [];

  allow(images: number): void {
    this.budget += images;
    for (const wake of this.wake.splice(0)) wake();
  }

  async generate(call: GenerateCall): Promise<GenerateResult> {
    const images: GeneratedImage[] = [];
    for (const slot of call.images) {
      while (this.budget <= 0) {
        this.waiting++;
        try {
          await new Promise<void>((resolve, reject) => {
            this.wake.push(resolve);
            call.signal.addEventListener('abort', () => reject(call.signal.reason), { once: true });
          });
        } finally {
          this.waiting--;
        }
      }
      this.budget--;
      this.produced++;
      const data = new Uint8Array(call.width * call.height * 3).fill(90);
      const image: GeneratedImage = { index: slot.index, seed: slot.seed, pixels: { data, width: call.width, height: call.height, channels: 3 } };
      images.push(image);
      await call.onImage?.(image);
    }
    return { images, warnings: [] };
  }

  async close(): Promise<void> {
    this.allow(1_000_000);
  }
}

interface GatedServer {
  readonly kiln: Kiln;
  readonly engine: GatedEngine;
  readonly wsUrl: string;
  /** Every frame the server received over WebSocket, parsed. */
  readonly received: unknown[][];
  close(): Promise<void>;
}

async function startGatedServer(): Promise<GatedServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-cli-gated-'));
  const engine = new GatedEngine();
  const config = loadConfig({
    KILN_PORT: '0',
    KILN_HOST: '127.0.0.1',
    KILN_DATA_DIR: dataDir,
    KILN_API_KEYS: TEST_KEY,
    KILN_LOG_LEVEL: 'error',
    KILN_STUDIO_THREADS: '1',
    KILN_WARMUP: 'false',
  });
  const kiln = await startKiln(config, { engines: new Map([[STUDIO, engine]]), logStream: new Writable({ write: (_c, _e, done) => done() }) });
  const received: unknown[][] = [];
  kiln.app.websocketServer.on('connection', (socket: WebSocket) => {
    socket.on('message', (data) => received.push(JSON.parse(data.toString()) as unknown[]));
  });
  return {
    kiln,
    engine,
    wsUrl: `${kiln.url.replace(/^http/, 'ws')}/v1`,
    received,
    async close() {
      engine.allow(1_000_000);
      await kiln.close(2_000);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

describe('kiln client commands', () => {
  let server: TestServer;
  let work: string;
  let env: Record<string, string>;
  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(path.join(tmpdir(), 'kiln-cli-'));
    env = { KILN_SERVER: server.wsUrl, KILN_KEY: TEST_KEY };
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  test('generate writes <seed>-<imageUUID> files of the asked size and format; --json lines describe them', async () => {
    const cwd = await mkdtemp(path.join(work, 'generate-'));
    const png = await kiln(['generate', 'a crimson lighthouse on emerald cliffs', '--model', STUDIO, '--size', '256x192', '-n', '2', '--format', 'png', '--seed', '11', '--out', 'shots', '--json'], { cwd, env }).done;
    assert.equal(png.code, 0, png.err);
    const lines = png.out.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    assert.deepEqual(lines.map((line) => line.seed).sort(), [11, 12]);
    for (const line of lines) {
      assert.equal(line.path, path.join(cwd, 'shots', `${String(line.seed)}-${String(line.imageUUID)}.png`));
      assert.equal(line.cost, 0);
      assert.deepEqual([line.width, line.height], [256, 192]);
      const meta = await sharp(line.path as string).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 256, 192]);
    }
    // No key in the environment: a local server's key comes from the first line of data/api-key.txt,
    // as the server writes it (key, then its webhook secret). Not a TTY, so JSON lines anyway.
    await mkdir(path.join(cwd, 'data'));
    await writeFile(path.join(cwd, 'data', 'api-key.txt'), `${TEST_KEY}\nwebhook secret: whsec_x\n`);
    // The default model (O3, on the studio engine here) with an aspect from its size table, and a
    // local reference file sent inline.
    await sharp({ create: { width: 400, height: 320, channels: 3, background: { r: 20, g: 90, b: 160 } } }).png().toFile(path.join(cwd, 'ref.png'));
    const webp = await kiln(['generate', 'three sailboats at sunset', '--aspect', '21:9', '--format', 'webp', '--quality', '80', '--ref', 'ref.png'], {
      cwd,
      env: { KILN_SERVER: server.wsUrl },
    }).done;
    assert.equal(webp.code, 0, webp.err);
    const item = JSON.parse(webp.out.trim()) as Record<string, unknown>;
    assert.equal(path.dirname(item.path as string), cwd);
    assert.match(path.basename(item.path as string), /^\d+-[0-9a-f-]{36}\.webp$/);
    const meta = await sharp(item.path as string).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 1552, 656]);
    assert.deepEqual([item.width, item.height, item.cost], [1552, 656, 0.028]);
  });

  test('on a terminal, a live display shows every image moving through its stages to done, then a total', async () => {
    const cwd = await mkdtemp(path.join(work, 'tty-'));
    // A wide pseudo-terminal, so no status line is cut at the edge.
    const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;
    const command = ['stty cols 200;', ...[process.execPath, ...kilnNodeArgs()].map(quote), 'generate', "'a golden pagoda'", '--model', STUDIO, '--size', '192x128', '-n', '3'].join(' ');
    const result = await new Promise<Finished>((resolve) => {
      const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.on('close', (code) => resolve({ code, out, err: '' }));
    });
    assert.equal(result.code, 0, result.out);
    // eslint-disable-next-line no-control-regex
    const text = result.out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '\n');
    // The first frame, drawn before the task is sent, shows every image waiting.
    for (const k of [1, 2, 3]) assert.match(text, new RegExp(`${k}/3\\s+waiting\\s+\\d+\\.\\ds`));
    // Kiln's progress items move the rows through their stages before they are done.
    assert.match(text, /\d\/3\s+(queued|rendering|encoding|storing)\s+\d+\.\ds/);
    for (const k of [1, 2, 3]) assert.match(text, new RegExp(`${k}/3\\s+done\\s+\\d+\\.\\ds\\s+\\$0\\.0000\\s+seed \\d+\\s+\\d+-[0-9a-f-]{36}\\.jpg`));
    assert.match(text, /3 of 3 images in \d+\.\ds, total \$0\.0000/);
    assert.doesNotMatch(text, /^\{"path"/m, 'no JSON lines on a terminal');
    assert.equal((await readdir(cwd)).filter((name) => name.endsWith('.jpg')).length, 3);
  });

  test('exit codes: 3 for a refused key or no server, 2 for a bad size or an unknown option, each with one readable line', async () => {
    const cwd = await mkdtemp(path.join(work, 'codes-'));
    const run = (args: string[], extra: Record<string, string> = env) => kiln(['generate', 'a castle', '--model', STUDIO, ...args], { cwd, env: extra }).done;
    const [badKey, noServer, badStudioSize, badO3Size, unknownOption, noKey, badBatchLine] = await Promise.all([
      run(['--key', 'kiln_wrong_key_0123456789abcdefghijklmnop']),
      run([], { KILN_SERVER: 'ws://127.0.0.1:1/v1', KILN_KEY: TEST_KEY }),
      run(['--size', '250x250']),
      kiln(['generate', 'a castle', '--size', '1000x1000'], { cwd, env }).done,
      run(['--colour', 'red']),
      kiln(['generate', 'a castle', '--server', 'ws://example.invalid/v1'], { cwd, env: {} }).done,
      (async () => {
        await writeFile(path.join(cwd, 'bad.jsonl'), '{"prompt":"ok"}\n{"prompt":"x","steps":4}\n');
        return kiln(['batch', 'bad.jsonl', '--model', STUDIO], { cwd, env }).done;
      })(),
    ]);
    const oneLine = (result: Finished, pattern: RegExp): void => {
      assert.match(result.err, pattern);
      assert.doesNotMatch(result.err, /\n\s+at /, 'no stack trace');
    };
    assert.equal(badKey.code, 3);
    oneLine(badKey, /^kiln generate: invalidApiKey: /);
    assert.equal(noServer.code, 3);
    oneLine(noServer, /^kiln generate: cannot reach ws:\/\/127\.0\.0\.1:1\/v1: ECONNREFUSED/);
    assert.equal(badStudioSize.code, 2);
    oneLine(badStudioSize, /^kiln generate: unsupportedDimensions: .*multiples of 8/);
    assert.equal(badO3Size.code, 2);
    oneLine(badO3Size, /1000x1000 is not a size of klingai:kling-image@o3; the sizes are 1:1: 1024x1024 2048x2048 4096x4096; 3:2: /);
    assert.equal(unknownOption.code, 2);
    oneLine(unknownOption, /^kiln generate: unknown option '--colour'/);
    assert.equal(noKey.code, 2);
    oneLine(noKey, /no API key: pass --key, or set KILN_KEY/);
    assert.equal(badBatchLine.code, 2);
    oneLine(badBatchLine, /line 2: unknown field "steps"/);
    assert.deepEqual((await readdir(cwd)).filter((name) => /\.(jpg|png|webp)$/.test(name)), [], 'nothing was written');
  });

  test('--help lists every command and option with examples', async () => {
    const help = (...args: string[]) => kiln(args, { cwd: work }).done;
    const [top, generate, batch, tasks] = await Promise.all([help('--help'), help('generate', '--help'), help('batch', '--help'), help('tasks', '--help')]);
    for (const result of [top, generate, batch, tasks]) assert.equal(result.code, 0, result.err);
    for (const word of ['serve', 'keys', 'generate', 'batch', 'tasks', 'Examples:', 'head -n1 data/api-key.txt']) assert.ok(top.out.includes(word), word);
    for (const option of ['--model', '--size', '--aspect', '--tier', '-n', '--format', '--quality', '--seed', '--ref', '--out', '--json', '--server', '--key', 'Examples:']) {
      assert.ok(generate.out.includes(option), option);
    }
    for (const word of ['--concurrency', 'manifest.jsonl', '.jsonl', 'Examples:']) assert.ok(batch.out.includes(word), word);
    for (const word of ['show', 'watch', 'Examples:']) assert.ok(tasks.out.includes(word), word);
    // The operator's commands answer --help the same way (exit 0, usage on stdout).
    const [keys, usage, deliveries] = await Promise.all([help('keys', '--help'), help('usage', '--help'), help('deliveries', '--help')]);
    for (const result of [keys, usage, deliveries]) assert.equal(result.code, 0, result.err);
    for (const word of ['create', '--budget', '--rate', '--max-concurrent-images']) assert.ok(keys.out.includes(word), word);
    for (const word of ['--group-by', '--since', '--format']) assert.ok(usage.out.includes(word), word);
    assert.match(deliveries.out, /deliveries/);
  });

  test('Ctrl-C cancels the running task on the server, closes the socket and exits 130', async () => {
    const gated = await startGatedServer();
    try {
      const cwd = await mkdtemp(path.join(work, 'sigint-'));
      const run = kiln(['generate', 'a long task', '--model', STUDIO, '--size', '512x512', '-n', '4', '--json'], { cwd, env: { KILN_SERVER: gated.wsUrl, KILN_KEY: TEST_KEY } });
      gated.engine.allow(1);
      await until(() => run.output().includes('"imageUUID"') && gated.engine.waiting > 0, 'the first image and a held one');
      const task = gated.received.flat().find((t) => (t as { taskType?: string }).taskType === 'imageInference') as { taskUUID: string };
      const started = Date.now();
      run.child.kill('SIGINT');
      const result = await run.done;
      assert.equal(result.code, 130, result.err);
      assert.ok(Date.now() - started < 5_000, 'exits promptly');
      assert.match(result.err, new RegExp(`interrupted; asked the server to cancel task ${task.taskUUID}`));
      assert.equal(result.out.trim().split('\n').length, 1, 'the image made before Ctrl-C was written');
      assert.ok(
        gated.received.flat().some((t) => (t as { taskType?: string; taskUUID?: string }).taskType === 'cancelTask' && (t as { taskUUID?: string }).taskUUID === task.taskUUID),
        'the server received cancelTask for the task',
      );
      await until(() => gated.kiln.app.websocketServer.clients.size === 0, 'the socket to close on the server');
    } finally {
      await gated.close();
    }
  });

  test('batch resumes after a kill: finished lines are skipped and untouched, every line ends done, the manifest is complete', async () => {
    const gated = await startGatedServer();
    try {
      const cwd = await mkdtemp(path.join(work, 'batch-'));
      const prompts = ['a red barn', '', '# a comment line', 'a blue whale', 'a windmill under the moon', 'three sailboats', 'a castle on a hill', 'a deer by a pine'];
      await writeFile(path.join(cwd, 'prompts.txt'), `${prompts.join('\n')}\n`);
      const promptLines = prompts.map((prompt, index) => ({ prompt, line: index + 1 })).filter(({ prompt }) => prompt !== '' && !prompt.startsWith('#'));
      const args = ['batch', 'prompts.txt', '--model', STUDIO, '--size', '128x128', '-n', '2', '--concurrency', '2', '--out', 'renders'];
      const options = { cwd, env: { KILN_SERVER: gated.wsUrl, KILN_KEY: TEST_KEY } };
      const out = path.join(cwd, 'renders');
      const complete = (line: number): boolean => existsSync(path.join(out, `${line}-1.jpg`)) && existsSync(path.join(out, `${line}-2.jpg`));

      gated.engine.allow(5);
      const first = kiln(args, options);
      // Five images made, the sixth held: with two tasks in flight at least two lines are complete.
      const imageFiles = async (): Promise<number> => (await readdir(out).catch(() => [])).filter((name) => /^\d+-\d\.jpg$/.test(name)).length;
      await until(async () => gated.engine.produced === 5 && gated.engine.waiting > 0 && (await imageFiles()) === 5, 'five image files');
      first.child.kill('SIGKILL');
      await first.done;
      const finished = promptLines.filter(({ line }) => complete(line)).map(({ line }) => line);
      assert.ok(finished.length >= 2 && finished.length < promptLines.length, `finished lines: ${finished.join(',')}`);
      const before = new Map<string, number>();
      for (const line of finished) for (const k of [1, 2]) before.set(`${line}-${k}.jpg`, (await stat(path.join(out, `${line}-${k}.jpg`))).mtimeMs);

      gated.engine.allow(1_000);
      const second = await kiln(args, options).done;
      assert.equal(second.code, 0, second.err);
      assert.match(second.err, new RegExp(`${promptLines.length - finished.length} done, ${finished.length} skipped, 0 failed of ${promptLines.length} lines`));
      for (const [file, mtime] of before) assert.equal((await stat(path.join(out, file))).mtimeMs, mtime, `${file} untouched`);
      const names = (await readdir(out)).sort();
      assert.deepEqual(names.filter((name) => name.endsWith('.part') || name.startsWith('.')), [], 'no half-written files');
      const expected = promptLines.flatMap(({ line }) => [`${line}-1.jpg`, `${line}-2.jpg`]);
      for (const name of expected) {
        assert.ok(names.includes(name), name);
        const meta = await sharp(path.join(out, name)).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 128, 128]);
      }
      const manifest = (await readFile(path.join(out, 'manifest.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.deepEqual(manifest.map((entry) => entry.file), expected);
      for (const entry of manifest) {
        assert.equal(entry.prompt, promptLines.find(({ line }) => line === entry.line)?.prompt);
        assert.match(String(entry.imageUUID), /^[0-9a-f-]{36}$/);
        assert.equal(typeof entry.seed, 'number');
        assert.equal(entry.cost, 0);
      }
      assert.equal(new Set(manifest.map((entry) => entry.imageUUID)).size, manifest.length);
    } finally {
      await gated.close();
    }
  });

  test('tasks show reads an async task while it runs and after; tasks watch follows it to the end', async () => {
    const gated = await startGatedServer();
    try {
      const options = { cwd: work, env: { KILN_SERVER: gated.wsUrl, KILN_KEY: TEST_KEY } };
      const taskUUID = randomUUID();
      const ack = await post({ url: gated.kiln.url }, [
        { taskType: 'imageInference', taskUUID, model: STUDIO, positivePrompt: 'a lantern village', width: 128, height: 128, numberResults: 2, deliveryMethod: 'async', includeCost: true },
      ]);
      assert.equal(ack.status, 200);
      gated.engine.allow(1);
      await until(() => gated.engine.produced === 1 && gated.engine.waiting > 0, 'one image made, one held');
      const running = await kiln(['tasks', 'show', taskUUID], options).done;
      assert.equal(running.code, 0, running.err);
      assert.match(running.out, new RegExp(`task ${taskUUID}: 1 ready, 1 processing, 0 failed`));
      assert.match(running.out, /#\d\s+success\s+[0-9a-f-]{36}\s+seed \d+\s+\$0\.0000\s+http:\/\/\S+\/image\/[0-9a-f-]{36}\.jpg/);
      assert.match(running.out, /#\d\s+processing/);

      const watch = kiln(['tasks', 'watch', taskUUID, '--interval', '0.2'], options);
      await until(() => watch.output().includes('processing'), 'watch to print the running state');
      gated.engine.allow(1);
      const watched = await watch.done;
      assert.equal(watched.code, 0, watched.err);
      assert.equal(watched.out.match(/\bsuccess\b/g)?.length, 2, watched.out);

      const shown = await kiln(['tasks', 'show', taskUUID, '--json'], options).done;
      assert.equal(shown.code, 0, shown.err);
      const state = JSON.parse(shown.out) as { data: Record<string, unknown>[]; errors: unknown[] };
      assert.deepEqual(state.data.map((item) => item.status), ['success', 'success']);
      assert.deepEqual(state.errors, []);

      const unknown = await kiln(['tasks', 'show', randomUUID()], options).done;
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /^kiln tasks: taskNotFound: /);
    } finally {
      await gated.close();
    }
  });
});
