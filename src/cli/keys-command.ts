/**
 * `kiln keys …`: API keys managed in the store the server uses (SQLite in KILN_DATA_DIR, or
 * PostgreSQL at KILN_DATABASE_URL), with the server's own configuration. The store is the
 * authority: a key revoked here is refused by every process within seconds.
 */
import { openKeyHasher } from '../open-services.ts';
import { systemClock } from '../shared/clock.ts';
import type { ApiKeyRecord } from '../store/task-store.ts';
import { ApiKeys, type IssuedKey } from '../tasks/api-keys.ts';
import { openStoreForCommand, type StoreCommandIo } from './store-access.ts';
import { fromMicros, toMicros, type KeyAccount, type KeyLimits } from '../store/tenancy-store.ts';
import { remainingMicros } from '../tasks/tenancy.ts';

/** A key's limits, budget left and lifetime usage, as `kiln keys list` shows them. */
function accountFields(account: KeyAccount, now: number): Record<string, unknown> {
  const remaining = remainingMicros(account, now);
  return {
    maxConcurrentImages: account.maxConcurrentImages,
    maxQueuedImages: account.maxQueuedImages,
    rate: account.rate,
    weight: account.weight ?? 1,
    budget: account.budgetMicros === null ? null : fromMicros(account.budgetMicros),
    budgetPeriod: account.budgetMicros === null ? null : (account.budgetPeriod ?? 'total'),
    budgetRemaining: remaining === undefined ? null : fromMicros(remaining),
    usageImages: account.usageImages,
    usageCost: fromMicros(account.usageMicros),
  };
}

/** A budget without a period keeps the key's period, or counts per calendar month (UTC). */
function withPeriod(limits: Partial<KeyLimits>, current: KeyLimits['budgetPeriod']): Partial<KeyLimits> {
  if (limits.budgetMicros == null || limits.budgetPeriod !== undefined) return limits;
  return { ...limits, budgetPeriod: current ?? 'month' };
}

function limitsText(row: Record<string, unknown>): string {
  const or = (value: unknown, fallback: string): string => (value === null || value === undefined ? fallback : String(value));
  return [
    `concurrent ${or(row.maxConcurrentImages, 'default')}`,
    `queued ${or(row.maxQueuedImages, 'default')}`,
    `rate ${or(row.rate, 'default')}/s`,
    `weight ${or(row.weight, '1')}`,
    row.budget === null || row.budget === undefined ? 'no budget' : `budget ${String(row.budget)} USD/${String(row.budgetPeriod)}, ${String(row.budgetRemaining)} left`,
    `used ${or(row.usageImages, '0')} images, ${or(row.usageCost, '0')} USD`,
  ].join(', ');
}

export const KEYS_USAGE = `Usage: kiln keys <command>

  create [--label L] [LIMITS] [--json]
                                     a new key with its own webhook secret (both shown once)
  update <id> LIMITS [--json]        change a key's limits and budget (docs/tenancy.md)
  list [--json]                      every key: id, label, source, hint, created, revoked,
                                     limits, budget left and usage
  revoke <id>                        the key is refused from now on (within 5 s everywhere)
  rotate <id> [--json]               a new key under the same id; the old one stops working
  rotate-webhook-secret <id> [--json]
                                     a new webhook secret; the old one keeps signing for 24 h

LIMITS (each "none" to remove it; unset limits use the KILN_KEY_* defaults):
  --max-concurrent-images N   images queued or running at once
  --max-queued-images Q       images waiting to start at once
  --rate R                    tasks per second, with a burst of R
  --weight W                  share of the workers under contention (default 1)
  --budget USD                budget per period, e.g. 25
  --budget-period P           month (default), day or total

Uses the server's settings (KILN_DATA_DIR or KILN_DATABASE_URL, KILN_KEY_HASH_SECRET).
`;

/** Output streams and environment, so tests can run the command in-process. */
export type KeysIo = StoreCommandIo;

interface Parsed {
  readonly command: string | undefined;
  readonly id: string | undefined;
  readonly label: string | undefined;
  readonly json: boolean;
  readonly limits: Partial<KeyLimits>;
}

/** Limit flags: name → how its value is read (`none` clears it). */
const LIMIT_FLAGS: Record<string, (value: string) => Partial<KeyLimits> | string> = {
  '--max-concurrent-images': (v) => countFlag(v, 1, (n) => ({ maxConcurrentImages: n })),
  '--max-queued-images': (v) => countFlag(v, 0, (n) => ({ maxQueuedImages: n })),
  '--weight': (v) => countFlag(v, 1, (n) => ({ weight: n })),
  '--rate': (v) => {
    if (v === 'none') return { rate: null };
    const n = Number(v);
    return Number.isFinite(n) && n > 0 ? { rate: n } : `--rate must be a positive number of tasks per second or none, got ${v}`;
  },
  '--budget': (v) => {
    if (v === 'none') return { budgetMicros: null };
    const n = Number(v);
    return Number.isFinite(n) && n >= 0 ? { budgetMicros: toMicros(n) } : `--budget must be an amount in USD or none, got ${v}`;
  },
  '--budget-period': (v) => (v === 'month' || v === 'day' || v === 'total' ? { budgetPeriod: v } : `--budget-period must be month, day or total, got ${v}`),
};

function countFlag(value: string, min: number, make: (n: number | null) => Partial<KeyLimits>): Partial<KeyLimits> | string {
  if (value === 'none') return make(null);
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= min ? make(n) : `expected an integer of at least ${min} or none, got ${value}`;
}

function parse(args: readonly string[]): Parsed | string {
  let label: string | undefined;
  let json = false;
  let limits: Partial<KeyLimits> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const reader = LIMIT_FLAGS[flag];
    if (reader) {
      const value = inline ?? args[++i];
      if (value === undefined) return `${flag} needs a value`;
      const read = reader(value);
      if (typeof read === 'string') return `${flag}: ${read}`;
      limits = { ...limits, ...read };
    } else if (arg === '--json') json = true;
    else if (arg === '--label') {
      label = args[++i];
      if (label === undefined) return '--label needs a value';
    } else if (arg.startsWith('--label=')) label = arg.slice('--label='.length);
    else if (arg.startsWith('-')) return `unknown option ${arg}`;
    else positional.push(arg);
  }
  return { command: positional[0], id: positional[1], label, json, limits };
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
  if (args[0] === 'help' || args.includes('--help') || args.includes('-h')) {
    io.out(KEYS_USAGE);
    return 0;
  }
  const parsed = parse(args);
  if (typeof parsed === 'string' || parsed.command === undefined) {
    if (typeof parsed === 'string') io.err(`${parsed}\n`);
    io.err(KEYS_USAGE);
    return 2;
  }
  const opened = await openStoreForCommand(io);
  if (typeof opened === 'number') return opened;
  const { config, store } = opened;
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
      case 'create': {
        const issued = await keys.create(parsed.label ?? '', 'cli');
        if (Object.keys(parsed.limits).length > 0) await store.tenancy().setLimits(issued.id, withPeriod(parsed.limits, null));
        return print(issued, 'Created key');
      }
      case 'update': {
        const id = needId();
        if (id === undefined) return 2;
        const record = await store.findApiKeyById(id);
        if (!record) {
          io.err(`no key with id ${id}\n`);
          return 1;
        }
        await store.tenancy().setLimits(id, withPeriod(parsed.limits, (await store.tenancy().account(id))?.budgetPeriod ?? null));
        const account = await store.tenancy().account(id);
        const row = { ...listRow(record), ...(account ? accountFields(account, Date.now()) : {}) };
        io.out(parsed.json ? `${JSON.stringify(row)}\n` : `Updated key ${id}: ${limitsText(row)}. Servers apply it to new tasks at once.\n`);
        return 0;
      }
      case 'list': {
        const now = Date.now();
        const rows = await Promise.all(
          (await keys.list()).map(async (record) => {
            const account = await store.tenancy().account(record.id);
            return { ...listRow(record), ...(account ? accountFields(account, now) : {}) };
          }),
        );
        if (parsed.json) io.out(`${JSON.stringify(rows)}\n`);
        else {
          for (const row of rows) {
            io.out(`${row.id}  ${String(row.hint ?? '').padEnd(10)}  ${row.revokedAt ? `revoked ${row.revokedAt}` : 'active'}  ${row.source ?? '-'}  ${row.label}\n`);
            io.out(`    ${limitsText(row)}\n`);
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
