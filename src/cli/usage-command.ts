/**
 * `kiln usage`: the usage ledger (docs/tenancy.md), read from the store the server uses, one
 * row per charged image or grouped by day, model or key. Sums are taken in integer
 * micro-dollars, so they equal what the clients were told exactly.
 */
import { fromMicros, type LedgerEntry } from '../store/tenancy-store.ts';
import { usageRow } from '../tasks/tenancy.ts';
import type { KeysIo } from './keys-command.ts';
import { openStoreForCommand } from './store-access.ts';

export const USAGE_USAGE = `Usage: kiln usage [--key ID] [--since DATE] [--until DATE] [--group-by day|model|key] [--format table|csv|json]

  --key ID        one API key's rows (default: every key)
  --since DATE    from this date or time (ISO 8601, UTC), inclusive
  --until DATE    up to this date or time, exclusive
  --group-by G    one line per day, model or key, with images and cost
  --format F      table (default), csv or json

Uses the server's settings (KILN_DATA_DIR or KILN_DATABASE_URL).
`;

type GroupBy = 'day' | 'model' | 'key';
type Format = 'table' | 'csv' | 'json';

interface Options {
  key?: string;
  since?: number;
  until?: number;
  groupBy?: GroupBy;
  format: Format;
}

function parse(args: readonly string[]): Options | string {
  const options: Options = { format: 'table' };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? args[++i];
    if (flag === '--key') {
      const v = value();
      if (v === undefined) return '--key needs a value';
      options.key = v;
    } else if (flag === '--since' || flag === '--until') {
      const v = value();
      const at = v === undefined ? Number.NaN : Date.parse(v);
      if (!Number.isFinite(at)) return `${flag} needs a date such as 2026-11-01`;
      if (flag === '--since') options.since = at;
      else options.until = at;
    } else if (flag === '--group-by') {
      const v = value();
      if (v !== 'day' && v !== 'model' && v !== 'key') return '--group-by must be day, model or key';
      options.groupBy = v;
    } else if (flag === '--format') {
      const v = value();
      if (v !== 'table' && v !== 'csv' && v !== 'json') return '--format must be table, csv or json';
      options.format = v;
    } else return `unknown option ${arg}`;
  }
  return options;
}

/** Rows grouped by day, model or key, with images and cost (micro-dollar sums). */
function grouped(entries: readonly LedgerEntry[], by: GroupBy): Record<string, unknown>[] {
  const groups = new Map<string, { images: number; micros: number }>();
  for (const entry of entries) {
    const name = by === 'day' ? new Date(entry.at).toISOString().slice(0, 10) : by === 'model' ? entry.model : entry.apiKeyId;
    const group = groups.get(name) ?? { images: 0, micros: 0 };
    group.images++;
    group.micros += entry.priceMicros;
    groups.set(name, group);
  }
  return [...groups].sort(([a], [b]) => a.localeCompare(b)).map(([name, group]) => ({ [by]: name, images: group.images, cost: fromMicros(group.micros) }));
}

function csvField(value: unknown): string {
  const text = value === undefined || value === null ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function render(rows: readonly Record<string, unknown>[], totals: { images: number; cost: number }, format: Format): string {
  if (format === 'json') return `${JSON.stringify({ totals, rows })}\n`;
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  if (format === 'csv') return [columns.join(','), ...rows.map((row) => columns.map((c) => csvField(row[c])).join(','))].join('\n') + '\n';
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((row) => String(row[c] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(columns), ...rows.map((row) => line(columns.map((c) => String(row[c] ?? '')))), '', `total: ${totals.images} images, ${totals.cost} USD`, ''].join('\n');
}

/** Runs `kiln usage <args>`; resolves with the exit code. */
export async function runUsageCommand(args: readonly string[], io: KeysIo): Promise<number> {
  if (args[0] === 'help' || args.includes('--help') || args.includes('-h')) {
    io.out(USAGE_USAGE);
    return 0;
  }
  const options = parse(args);
  if (typeof options === 'string') {
    io.err(`${options}\n${USAGE_USAGE}`);
    return 2;
  }
  const opened = await openStoreForCommand(io);
  if (typeof opened === 'number') return opened;
  const { store } = opened;
  try {
    const entries = await store.tenancy().usage({
      ...(options.key === undefined ? {} : { apiKeyId: options.key }),
      ...(options.since === undefined ? {} : { since: options.since }),
      ...(options.until === undefined ? {} : { until: options.until }),
    });
    const totals = { images: entries.length, cost: fromMicros(entries.reduce((sum, entry) => sum + entry.priceMicros, 0)) };
    const rows = options.groupBy === undefined ? entries.map(usageRow) : grouped(entries, options.groupBy);
    io.out(render(rows, totals, options.format));
    return 0;
  } finally {
    await store.close();
  }
}
