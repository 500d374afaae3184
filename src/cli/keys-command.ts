/**
 * `kiln keys …`: API keys managed in the store the server uses (SQLite in KILN_DATA_DIR, or
 * PostgreSQL at KILN_DATABASE_URL), with the server's own configuration. The store is the
 * authority: a key revoked here is refused by every process within seconds.
 */
import path from 'node:path';
import { ConfigError, loadConfig } from '../config/config.ts';
import { openKeyHasher } from '../open-services.ts';
import { systemClock } from '../shared/clock.ts';
import { openTaskStore } from '../store/open-task-store.ts';
import type { ApiKeyRecord } from '../store/task-store.ts';
import { ApiKeys, type IssuedKey } from '../tasks/api-keys.ts';
import { mkdir, chmod } from 'node:fs/promises';

export const KEYS_USAGE = `Usage: kiln keys <command>

  create [--label L] [--json]        a new key with its own webhook secret (both shown once)
  list [--json]                      every key: id, label, source, hint, created, revoked
  revoke <id>                        the key is refused from now on (within 5 s everywhere)
  rotate <id> [--json]               a new key under the same id; the old one stops working
  rotate-webhook-secret <id> [--json]
                                     a new webhook secret; the old one keeps signing for 24 h

Uses the server's settings (KILN_DATA_DIR or KILN_DATABASE_URL, KILN_KEY_HASH_SECRET).
`;

/** Output streams and environment, so tests can run the command in-process. */
export interface KeysIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  out(text: string): void;
  err(text: string): void;
}

interface Parsed {
  readonly command: string | undefined;
  readonly id: string | undefined;
  readonly label: string | undefined;
  readonly json: boolean;
}

function parse(args: readonly string[]): Parsed | string {
  let label: string | undefined;
  let json = false;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--json') json = true;
    else if (arg === '--label') {
      label = args[++i];
      if (label === undefined) return '--label needs a value';
    } else if (arg.startsWith('--label=')) label = arg.slice('--label='.length);
    else if (arg.startsWith('-')) return `unknown option ${arg}`;
    else positional.push(arg);
  }
  return { command: positional[0], id: positional[1], label, json };
}

function issuedBlock(issued: IssuedKey, what: string): string {
  const lines = [`${what} ${issued.id}${issued.label ? ` (label: ${issued.label})` : ''}`, ''];
  if (issued.key !== '') lines.push(`  key:            ${issued.key}`);
  if (issued.webhookSecret !== null) lines.push(`  webhook secret: ${issued.webhookSecret}`);
  lines.push('', 'Shown only once: Kiln keeps only a hash of the key. Store them now.', '');
  return lines.join('\n');
}

function listRow(record: ApiKeyRecord): Record<string, unknown> {
  return {
    id: record.id,
    label: record.label,
    source: record.source ?? null,
    hint: record.hint ?? null,
    createdAt: new Date(record.createdAt).toISOString(),
    revokedAt: record.revokedAt == null ? null : new Date(record.revokedAt).toISOString(),
    webhookSigned: record.webhookSecret !== null,
  };
}

/** Runs `kiln keys <args>`; resolves with the exit code. */
export async function runKeysCommand(args: readonly string[], io: KeysIo): Promise<number> {
  const parsed = parse(args);
  if (typeof parsed === 'string' || parsed.command === undefined || parsed.command === 'help') {
    if (typeof parsed === 'string') io.err(`${parsed}\n`);
    io.err(KEYS_USAGE);
    return typeof parsed === 'string' || parsed.command === undefined ? 2 : 0;
  }
  let config;
  try {
    config = loadConfig(io.env, 'serve');
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (config.databaseUrl === undefined) {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    await chmod(config.dataDir, 0o700);
  }
  const store = await openTaskStore({
    ...(config.databaseUrl === undefined ? {} : { databaseUrl: config.databaseUrl }),
    sqliteFile: path.join(config.dataDir, 'kiln.sqlite'),
    poolSize: 1,
  });
  if (config.databaseUrl === undefined) await chmod(path.join(config.dataDir, 'kiln.sqlite'), 0o600);
  try {
    const keys = new ApiKeys(store, systemClock, await openKeyHasher(config, undefined));
    const needId = (): string | undefined => {
      if (parsed.id === undefined) io.err(`kiln keys ${parsed.command} needs a key id (see kiln keys list)\n`);
      return parsed.id;
    };
    const print = (issued: IssuedKey | undefined, what: string): number => {
      if (!issued) {
        io.err(`no valid key with id ${parsed.id}\n`);
        return 1;
      }
      io.out(parsed.json ? `${JSON.stringify(issued)}\n` : issuedBlock(issued, what));
      return 0;
    };
    switch (parsed.command) {
      case 'create':
        return print(await keys.create(parsed.label ?? '', 'cli'), 'Created key');
      case 'list': {
        const rows = (await keys.list()).map(listRow);
        if (parsed.json) io.out(`${JSON.stringify(rows)}\n`);
        else {
          for (const row of rows) {
            io.out(`${row.id}  ${String(row.hint ?? '').padEnd(10)}  ${row.revokedAt ? `revoked ${row.revokedAt}` : 'active'}  ${row.source ?? '-'}  ${row.label}\n`);
          }
        }
        return 0;
      }
      case 'revoke': {
        const id = needId();
        if (id === undefined) return 2;
        if (!(await keys.revoke(id))) {
          io.err(`no valid key with id ${id}\n`);
          return 1;
        }
        io.out(parsed.json ? `${JSON.stringify({ id, revoked: true })}\n` : `Revoked key ${id}. Servers refuse it within 5 seconds.\n`);
        return 0;
      }
      case 'rotate': {
        const id = needId();
        return id === undefined ? 2 : print(await keys.rotate(id), 'New key for');
      }
      case 'rotate-webhook-secret': {
        const id = needId();
        return id === undefined ? 2 : print(await keys.rotateWebhookSecret(id), 'New webhook secret for');
      }
      default:
        io.err(`unknown keys command '${parsed.command}'.\n${KEYS_USAGE}`);
        return 2;
    }
  } finally {
    await store.close();
  }
}
