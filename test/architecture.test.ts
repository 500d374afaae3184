import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './helpers/repo-root.ts';

/**
 * Keeps the import boundaries of docs/architecture.md: each folder of src/ may import only
 * the folders listed for it (type imports included), and no source file takes part in an
 * import cycle.
 */
const SRC = path.join(REPO_ROOT, 'src');

const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  shared: [],
  metrics: [],
  'engines/spec': [],
  errors: ['shared'],
  config: ['shared', 'errors'],
  models: ['shared'],
  net: ['shared', 'errors'],
  protocol: ['models', 'errors', 'shared'],
  'engines/*': ['engines/spec', 'shared', 'errors'],
  imaging: ['shared', 'errors', 'engines/spec', 'metrics'],
  queue: ['shared', 'errors'],
  events: ['shared', 'errors'],
  store: ['shared', 'errors'],
  inputs: ['store', 'imaging', 'errors', 'shared', 'net', 'engines/spec', 'config', 'protocol'],
  delivery: ['store', 'net', 'shared', 'errors', 'metrics'],
  tasks: ['engines/spec', 'imaging', 'protocol', 'queue', 'store', 'events', 'delivery', 'shared', 'errors', 'models', 'metrics'],
  api: ['tasks', 'protocol', 'events', 'errors', 'config', 'shared', 'metrics'],
  // Commands beside the server (`kiln keys`): wiring like main.ts, so they may use open-services;
  // the client commands (`kiln generate`) read the O3 size table from models.
  cli: ['.', 'config', 'shared', 'store', 'tasks', 'errors', 'models', 'delivery'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

/** `engines/studio/x.ts` → `engines/studio`; `tasks/x.ts` → `tasks`; `compose.ts` → `.` */
function folderOf(file: string): string {
  const parts = path.relative(SRC, file).split(path.sep);
  if (parts.length === 1) return '.';
  return parts[0] === 'engines' ? `engines/${parts[1]}` : (parts[0] as string);
}

function rule(folder: string): readonly string[] | undefined {
  if (folder.startsWith('engines/') && folder !== 'engines/spec') return ALLOWED['engines/*'];
  return ALLOWED[folder];
}

/** Relative imports of a file; `runtimeOnly` leaves out `import type` (erased, so never a runtime cycle). */
function importsOf(file: string, runtimeOnly = false): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(import|export)(\s+type)?[^'";]*?from\s+'(\.[^']+)'/g)]
    .filter((m) => !(runtimeOnly && m[2]))
    .map((m) => path.resolve(path.dirname(file), m[3] as string));
}

test('every src folder imports only what docs/architecture.md allows', () => {
  const problems: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file);
    if (from === '.') continue; // main.ts and compose.ts wire everything
    const allowed = rule(from);
    assert.ok(allowed, `no rule for folder ${from}`);
    for (const target of importsOf(file)) {
      const to = folderOf(target);
      if (to === from || allowed.includes(to)) continue;
      problems.push(`${path.relative(SRC, file)} imports ${path.relative(SRC, target)} (${from} → ${to})`);
    }
  }
  assert.deepEqual(problems, []);
});

test('no runtime import cycles between source files', () => {
  const graph = new Map(sourceFiles(SRC).map((file) => [file, importsOf(file, true)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, trail: string[]): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      cycles.push([...trail.slice(trail.indexOf(file)), file].map((f) => path.relative(SRC, f)).join(' → '));
      return;
    }
    state.set(file, 'visiting');
    for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...trail, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(cycles, []);
});
