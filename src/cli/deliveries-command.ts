import { describeDelivery } from '../delivery/delivery-log.ts';
import { openStoreForCommand, type StoreCommandIo } from './store-access.ts';

export const DELIVERIES_USAGE = `Usage: kiln deliveries <taskUUID> [--json]

The webhook and upload deliveries of a task, with every attempt (time, HTTP status or error,
latency) and when a pending one is tried next. Reads the store the server uses
(KILN_DATABASE_URL, or the SQLite file in KILN_DATA_DIR), so it runs beside the server, not
through it. Clients ask the same over the API: {"taskType":"getDeliveries","taskUUID":"…"}.

  --json   one JSON object per delivery, as getDeliveries answers them

Examples:
  kiln deliveries 6f1c2f0e-4b7a-4c1e-9a51-2d0f3c8e7b11
  kiln deliveries 6f1c2f0e-4b7a-4c1e-9a51-2d0f3c8e7b11 --json | jq .attempts
`;

interface Shown {
  deliveryId: string;
  kind: string;
  host: string;
  status: string;
  imageUUID: string | null;
  nextAttemptAt?: string;
  attempts: { attempt: number; at: string; httpStatus?: number; error?: string; latencyMs: number }[];
}

/** Runs `kiln deliveries <taskUUID>`; resolves with the exit code (1: the task has no deliveries). */
export async function runDeliveriesCommand(args: readonly string[], io: StoreCommandIo): Promise<number> {
  const json = args.includes('--json');
  const rest = args.filter((arg) => arg !== '--json');
  if (rest.includes('help') || rest.includes('--help') || rest.includes('-h')) {
    io.out(DELIVERIES_USAGE);
    return 0;
  }
  const unknown = rest.find((arg) => arg.startsWith('-'));
  if (unknown !== undefined || rest.length !== 1) {
    io.err(`${unknown === undefined ? 'kiln deliveries needs one taskUUID' : `unknown option ${unknown}`}\n${DELIVERIES_USAGE}`);
    return 2;
  }
  const taskUUID = rest[0]!;
  const opened = await openStoreForCommand(io);
  if (typeof opened === 'number') return opened;
  try {
    const deliveries = (await opened.store.listTaskDeliveries(taskUUID)).map(({ delivery, attempts }) => describeDelivery(delivery, attempts) as unknown as Shown);
    if (deliveries.length === 0) {
      io.err(`task ${taskUUID} has no deliveries (no webhookURL or uploadEndpoint, or they were swept)\n`);
      return 1;
    }
    if (json) {
      for (const delivery of deliveries) io.out(`${JSON.stringify(delivery)}\n`);
      return 0;
    }
    for (const d of deliveries) {
      const next = d.nextAttemptAt === undefined ? '' : `, next attempt ${d.nextAttemptAt}`;
      io.out(`${d.kind} ${d.deliveryId} → ${d.host}${d.imageUUID ? ` (image ${d.imageUUID})` : ''}: ${d.status}${next}\n`);
      for (const a of d.attempts) {
        const outcome = a.error === undefined ? `HTTP ${a.httpStatus ?? '?'}` : `${a.httpStatus === undefined ? '' : `HTTP ${a.httpStatus}: `}${a.error}`;
        io.out(`  #${a.attempt}  ${a.at}  ${String(a.latencyMs).padStart(6)} ms  ${outcome}\n`);
      }
    }
    return 0;
  } finally {
    await opened.store.close();
  }
}
