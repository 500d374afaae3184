/**
 * glibc's allocator settings (bin/tuned, bin/kiln, src/shared/malloc-tuning.ts): the launchers
 * pass them on, glibc reads them as meant (its dynamic loader lists the values it parsed), an
 * operator's own values win, and with them repeated large encodes stop taking fresh pages from
 * the kernel, which is what they are for (counted as page faults, not timed).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { untunedAllocatorWarning } from '../src/shared/malloc-tuning.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

const TUNED = path.join(REPO_ROOT, 'bin', 'tuned');
const KILN = path.join(REPO_ROOT, 'bin', 'kiln');

/** glibc's version here, e.g. [2, 36]; undefined elsewhere. */
function glibcVersion(): [number, number] | undefined {
  try {
    const match = /glibc (\d+)\.(\d+)/.exec(execFileSync('getconf', ['GNU_LIBC_VERSION'], { encoding: 'utf8' }));
    return match ? [Number(match[1]), Number(match[2])] : undefined;
  } catch {
    return undefined;
  }
}
const VERSION = glibcVersion();
/** The mmap threshold bin/tuned picks: glibc before 2.36 refuses more than 32 MiB. */
const MMAP_THRESHOLD = VERSION && (VERSION[0] > 2 || VERSION[1] >= 36) ? 64 * 2 ** 20 : 32 * 2 ** 20;
const SETTINGS = `glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=${MMAP_THRESHOLD}:glibc.malloc.trim_threshold=${128 * 2 ** 20}`;

const scratch: string[] = [];
after(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The environment without GLIBC_TUNABLES (`npm test` itself runs through bin/tuned). */
function bareEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { GLIBC_TUNABLES: _set, ...env } = process.env;
  return { ...env, ...extra };
}

/** glibc's dynamic loader of this process, or the reason there is none (another C library). */
function glibcLoader(): { loader: string } | { skip: string } {
  if (process.platform !== 'linux') return { skip: `not Linux (${process.platform})` };
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string }; sharedObjects?: string[] };
  if (!report.header?.glibcVersionRuntime) return { skip: 'this Node does not run on glibc' };
  const loader = report.sharedObjects?.find((file) => /\/ld-linux[^/]*\.so/.test(file));
  return loader ? { loader } : { skip: 'glibc loader not found among the shared objects' };
}

/** The malloc tunables glibc parsed for a process started by `bin/tuned` (the loader's `--list-tunables`, glibc 2.33 and later), or undefined. */
async function parsedTunables(loader: string, env: NodeJS.ProcessEnv): Promise<Record<string, number> | undefined> {
  const listed = await run('sh', [TUNED, loader, '--list-tunables'], env);
  if (listed.code !== 0) return undefined;
  const values: Record<string, number> = {};
  for (const match of listed.stdout.matchAll(/^glibc\.malloc\.(\w+): (0x[0-9a-f]+)/gm)) values[match[1]!] = Number(match[2]);
  return values;
}

test('bin/tuned passes the settings on, leaving out what an operator chose with MALLOC_* and placing their GLIBC_TUNABLES last', async () => {
  const seen = async (extra: NodeJS.ProcessEnv): Promise<string> => {
    const result = await run('sh', [TUNED, process.execPath, '-p', 'process.env.GLIBC_TUNABLES'], bareEnv(extra));
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim();
  };
  assert.equal(await seen({}), SETTINGS);
  assert.equal(await seen({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }), `${SETTINGS}:glibc.malloc.arena_max=4`);
  assert.equal(await seen({ MALLOC_ARENA_MAX: '2' }), SETTINGS.replace('glibc.malloc.arena_max=1:', ''));
  assert.equal(await seen({ MALLOC_MMAP_THRESHOLD_: '1048576', MALLOC_TRIM_THRESHOLD_: '1048576' }), 'glibc.malloc.arena_max=1');
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
  assert.equal(pkg.bin.kiln, 'bin/kiln');
  assert.equal(pkg.scripts.start, 'sh bin/kiln');
  for (const name of ['test', 'bench', 'soak', 'cluster']) assert.match(pkg.scripts[name]!, /(^|&& )sh bin\/tuned node /, `npm run ${name} runs through bin/tuned`);
});

test('glibc reads the settings, and an operator’s own GLIBC_TUNABLES win', async (t) => {
  const found = glibcLoader();
  if ('skip' in found) return void t.skip(found.skip);
  const ours = await parsedTunables(found.loader, bareEnv());
  if (!ours) return void t.skip('this glibc has no --list-tunables (before 2.33)');
  assert.deepEqual([ours.arena_max, ours.mmap_threshold, ours.trim_threshold], [1, MMAP_THRESHOLD, 128 * 2 ** 20]);
  const theirs = await parsedTunables(found.loader, bareEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }));
  assert.deepEqual([theirs?.arena_max, theirs?.mmap_threshold, theirs?.trim_threshold], [4, MMAP_THRESHOLD, 128 * 2 ** 20]);
});

test('bin/kiln, reached through a relative symlink as npm links it, runs dist/main.js beside it with the settings and the arguments', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-bin-'));
  scratch.push(dir);
  // A package of its own: bin/kiln and bin/tuned as shipped, and a dist/main.js that reports.
  mkdirSync(path.join(dir, 'pkg', 'bin'), { recursive: true });
  mkdirSync(path.join(dir, 'pkg', 'dist'));
  mkdirSync(path.join(dir, '.bin'));
  // bin/tuned keeps the mode a checkout gave it (bin/kiln runs it with sh); npm marks bin/kiln executable.
  copyFileSync(TUNED, path.join(dir, 'pkg', 'bin', 'tuned'));
  chmodSync(path.join(dir, 'pkg', 'bin', 'tuned'), 0o644);
  copyFileSync(KILN, path.join(dir, 'pkg', 'bin', 'kiln'));
  chmodSync(path.join(dir, 'pkg', 'bin', 'kiln'), 0o755);
  writeFileSync(
    path.join(dir, 'pkg', 'dist', 'main.js'),
    'console.log(JSON.stringify({ main: process.argv[1], args: process.argv.slice(2), execArgv: process.execArgv, tunables: process.env.GLIBC_TUNABLES }));\n',
  );
  symlinkSync(path.join('..', 'pkg', 'bin', 'kiln'), path.join(dir, '.bin', 'kiln'));
  const result = await run(path.join(dir, '.bin', 'kiln'), ['worker', '--help'], bareEnv());
  assert.equal(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as { main: string; args: string[]; execArgv: string[]; tunables: string };
  assert.equal(path.resolve(seen.main), path.join(dir, 'pkg', 'dist', 'main.js'));
  assert.deepEqual(seen.args, ['worker', '--help']);
  assert.deepEqual(seen.execArgv, ['--enable-source-maps']);
  assert.equal(seen.tunables, SETTINGS);
});

test('with the settings, repeated large encodes and buffers reuse their memory instead of faulting in fresh pages', async (t) => {
  const found = glibcLoader();
  if ('skip' in found) return void t.skip(found.skip);
  // Five 2496×1664 encodes, each one's output dropped and collected before the next, then a
  // 48 MiB buffer (a 4096² image) made, dropped and made again; the page faults of each step.
  const script = `
    import sharp from 'sharp';
    sharp.concurrency(1);
    const settle = async () => { globalThis.gc(); await new Promise((resolve) => setTimeout(resolve, 20)); };
    const faults = () => process.resourceUsage().minorPageFault;
    const width = 2496, height = 1664, pixels = Buffer.alloc(width * height * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i % 7919) & 255;
    const encodes = [];
    for (let i = 0; i < 5; i++) {
      await settle();
      const before = faults();
      await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
      encodes.push(faults() - before);
    }
    const buffers = [];
    for (let i = 0; i < 2; i++) {
      await settle();
      const before = faults();
      Buffer.alloc(48 * 2 ** 20, 1);
      buffers.push(faults() - before);
    }
    console.log(JSON.stringify({ encodes, buffers }));`;
  const measure = async (launch: string[]): Promise<{ encodes: number[]; buffers: number[] }> => {
    const result = await run(launch[0]!, [...launch.slice(1), process.execPath, '--expose-gc', '--input-type=module', '--eval', script], bareEnv());
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as { encodes: number[]; buffers: number[] };
  };
  const tuned = await measure(['sh', TUNED]);
  const plain = await measure(['env']);
  const detail = `page faults with the settings ${JSON.stringify(tuned)}, without ${JSON.stringify(plain)}`;
  t.diagnostic(detail);
  // The first encode grows the heap either way (about 13,000 faults of 4 KiB); after it, each
  // faults fewer pages than the raw image's 3,047 (0–1,100 seen), where glibc's defaults fault
  // about 13,000 again on each of the next few (with a collection between them, on every one).
  const pages = (2496 * 1664 * 3) / 4096;
  for (const count of tuned.encodes.slice(1)) assert.ok(count < pages, detail);
  const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
  assert.ok(sum(tuned.encodes.slice(1, 3)) * 4 < sum(plain.encodes.slice(1, 3)), detail);
  // Blocks under the mmap threshold come back from the heap; 48 MiB is under it from glibc 2.36 on.
  if (MMAP_THRESHOLD > 48 * 2 ** 20) assert.ok(tuned.buffers[1]! < (48 * 2 ** 20) / 4096 / 4, detail);
});

test('a server on glibc without allocator settings says how to set them; with any of them it says nothing', (t) => {
  assert.equal(untunedAllocatorWarning({ GLIBC_TUNABLES: SETTINGS }), undefined);
  assert.equal(untunedAllocatorWarning({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=8' }), undefined);
  assert.equal(untunedAllocatorWarning({ MALLOC_ARENA_MAX: '2' }), undefined);
  const found = glibcLoader();
  if ('skip' in found) return void t.skip(found.skip);
  const warning = untunedAllocatorWarning({});
  assert.match(warning ?? '', /GLIBC_TUNABLES.*docs\/configuration\.md/);
  assert.equal(untunedAllocatorWarning({ GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F' }), warning, 'tunables of other kinds are not a choice about the allocator');
});
