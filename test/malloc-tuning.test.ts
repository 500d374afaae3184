/**
 * glibc's allocator settings (bin/tuned, bin/kiln, src/shared/malloc-tuning.ts): the launchers
 * pass them on, glibc reads them as meant (its dynamic loader lists the values it parsed), an
 * operator's own values win, and with them repeated large encodes stop taking fresh pages from
 * the kernel, which is what they are for (counted as page faults, not timed).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { KILN_MALLOC_TUNABLES, untunedAllocatorWarning } from '../src/shared/malloc-tuning.ts';
import { REPO_ROOT } from './helpers/repo-root.ts';

const TUNED = path.join(REPO_ROOT, 'bin', 'tuned');
const KILN = path.join(REPO_ROOT, 'bin', 'kiln');

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

/** The malloc tunables glibc parsed for a process started by `bin/tuned` (the loader's `--list-tunables`). */
async function parsedTunables(loader: string, env: NodeJS.ProcessEnv): Promise<Record<string, number>> {
  const listed = await run(TUNED, [loader, '--list-tunables'], env);
  assert.equal(listed.code, 0, listed.stderr);
  const values: Record<string, number> = {};
  for (const match of listed.stdout.matchAll(/^glibc\.malloc\.(\w+): (0x[0-9a-f]+)/gm)) values[match[1]!] = Number(match[2]);
  return values;
}

test('bin/tuned sets the same settings as the server checks for', () => {
  const script = readFileSync(TUNED, 'utf8');
  const assigned = /^KILN_TUNABLES=(\S+)$/m.exec(script)?.[1];
  assert.equal(assigned, KILN_MALLOC_TUNABLES);
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
  assert.equal(pkg.bin.kiln, 'bin/kiln');
  assert.equal(pkg.scripts.start, 'bin/kiln');
  for (const name of ['test', 'bench', 'soak', 'cluster']) assert.match(pkg.scripts[name]!, /(^|&& )bin\/tuned node /, `npm run ${name} runs through bin/tuned`);
});

test('glibc reads the settings, and an operator’s own GLIBC_TUNABLES win', async (t) => {
  const found = glibcLoader();
  if ('skip' in found) return void t.skip(found.skip);
  const ours = await parsedTunables(found.loader, bareEnv());
  assert.deepEqual([ours.arena_max, ours.mmap_threshold, ours.trim_threshold], [1, 64 * 2 ** 20, 128 * 2 ** 20]);
  const theirs = await parsedTunables(found.loader, bareEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }));
  assert.deepEqual([theirs.arena_max, theirs.mmap_threshold, theirs.trim_threshold], [4, 64 * 2 ** 20, 128 * 2 ** 20]);
});

test('bin/kiln, reached through a relative symlink as npm links it, runs dist/main.js beside it with the settings and the arguments', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-bin-'));
  scratch.push(dir);
  // A package of its own: bin/kiln and bin/tuned as shipped, and a dist/main.js that reports.
  mkdirSync(path.join(dir, 'pkg', 'bin'), { recursive: true });
  mkdirSync(path.join(dir, 'pkg', 'dist'));
  mkdirSync(path.join(dir, '.bin'));
  for (const [from, name] of [[KILN, 'kiln'], [TUNED, 'tuned']] as const) {
    copyFileSync(from, path.join(dir, 'pkg', 'bin', name));
    chmodSync(path.join(dir, 'pkg', 'bin', name), 0o755);
  }
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
  assert.equal(seen.tunables, KILN_MALLOC_TUNABLES);
});

test('with the settings, repeated 2496×1664 encodes reuse their memory instead of faulting in fresh pages', async (t) => {
  const found = glibcLoader();
  if ('skip' in found) return void t.skip(found.skip);
  // Five encodes in a child started as `npm start` starts the server; the page faults of each.
  const script = `
    import sharp from 'sharp';
    sharp.concurrency(1);
    const width = 2496, height = 1664, pixels = Buffer.alloc(width * height * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i % 7919) & 255;
    const faults = [];
    for (let i = 0; i < 5; i++) {
      const before = process.resourceUsage().minorPageFault;
      await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
      faults.push(process.resourceUsage().minorPageFault - before);
    }
    console.log(JSON.stringify(faults));`;
  const result = await run(TUNED, [process.execPath, '--input-type=module', '--eval', script], bareEnv());
  assert.equal(result.code, 0, result.stderr);
  const faults = JSON.parse(result.stdout) as number[];
  // The first encode grows the heap (about 13,000 faults, 4 KiB each); glibc's defaults fault that
  // much again on each of the next few. The raw image alone is 3,047 pages.
  const pages = (2496 * 1664 * 3) / 4096;
  for (const [i, count] of faults.slice(1).entries()) assert.ok(count < pages / 2, `encode ${i + 2} faulted ${count} pages (all: ${faults.join(', ')})`);
});

test('a server on glibc without allocator settings says how to set them; with any of them it says nothing', (t) => {
  assert.equal(untunedAllocatorWarning({ GLIBC_TUNABLES: KILN_MALLOC_TUNABLES }), undefined);
  assert.equal(untunedAllocatorWarning({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=8' }), undefined);
  const found = glibcLoader();
  if ('skip' in found) return void t.skip(found.skip);
  const warning = untunedAllocatorWarning({});
  assert.ok(warning?.includes(`GLIBC_TUNABLES=${KILN_MALLOC_TUNABLES}`), warning);
  assert.equal(untunedAllocatorWarning({ GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F' }), warning, 'tunables of other kinds are not a choice about the allocator');
});
