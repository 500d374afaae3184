/**
 * Kiln for the bench, as a child process of `npm run bench` (started with `fork`, so it can be
 * asked for figures over IPC): `startKiln` on loopback from the environment (as `kiln serve`
 * reads it), optionally with the fixed test engine injected for every model (`--engine fixed`).
 *
 * It counts the SQL statements and commits the store runs (every run of a better-sqlite3
 * statement) and the main thread's busy time (event-loop
 * utilisation), and answers `{ type: 'stats' }` messages with them. Prints
 * `{"listening": "http://127.0.0.1:<port>"}` once it answers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { Writable } from 'node:stream';
import { startKiln } from '../src/compose.ts';
import { loadConfig } from '../src/config/config.ts';
import type { ImageEngine } from '../src/engines/spec/image-engine.ts';
import { MODELS } from '../src/models/model-registry.ts';
import { createFixedEngine } from '../test/helpers/fixed-engine.ts';
import { TEST_KEY } from '../test/helpers/kiln-server.ts';

// Statements are counted as they run (the store keeps them prepared, so `prepare` is not a count).
const counts = { statements: 0, commits: 0 };
const probe = new Database(':memory:');
const statementPrototype = Object.getPrototypeOf(probe.prepare('select 1')) as Record<'run' | 'all' | 'get', (...args: unknown[]) => unknown>;
probe.close();
for (const method of ['run', 'all', 'get'] as const) {
  const original = statementPrototype[method];
  statementPrototype[method] = function (this: Database.Statement, ...args: unknown[]) {
    counts.statements++;
    if (this.source === 'commit') counts.commits++;
    if (process.env.BENCH_LOG_SQL) process.stderr.write(`${this.source.slice(0, 160)}\n`);
    return original.apply(this, args);
  };
}

const engineArg = process.argv.indexOf('--engine');
const engineName = engineArg >= 0 ? process.argv[engineArg + 1] : undefined;
const engines = new Map<string, ImageEngine>();
if (engineName === 'fixed') {
  const fixed = await createFixedEngine();
  for (const model of MODELS.keys()) engines.set(model, fixed);
}

const dataDir = process.env.KILN_DATA_DIR ?? (await mkdtemp(path.join(tmpdir(), 'kiln-bench-')));
const config = loadConfig({
  KILN_PORT: '0',
  KILN_HOST: '127.0.0.1',
  KILN_API_KEYS: TEST_KEY,
  KILN_LOG_LEVEL: 'warn',
  ...process.env,
  KILN_DATA_DIR: dataDir,
});
const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
const kiln = await startKiln(config, { logStream: silent, ...(engines.size > 0 ? { engines } : {}) });
process.stdout.write(`${JSON.stringify({ listening: kiln.url })}\n`);

process.on('message', (message: { type: string }) => {
  if (message.type !== 'stats') return;
  const cpu = process.cpuUsage();
  process.send?.({
    type: 'stats',
    statements: counts.statements,
    commits: counts.commits,
    mainThreadActiveMs: performance.eventLoopUtilization().active,
    cpuMs: (cpu.user + cpu.system) / 1000,
  });
});
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void kiln.close(2_000).then(async () => {
    if (!process.env.KILN_DATA_DIR) await rm(dataDir, { recursive: true, force: true });
    process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);
