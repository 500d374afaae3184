/**
 * `npm run soak -- --minutes 30`: mixed traffic against a fresh `kiln serve` child on loopback,
 * for finding leaks and lost work (not part of CI). Traffic, all at once:
 *
 * - sync REST tasks (`kiln:studio@1` 256² and 1024² JPG/PNG/WEBP, URL and base64Data);
 * - async REST tasks with a webhook to a loopback receiver, each checked to end (its webhook,
 *   else a `getResponse` poll) — a task that never ends is **lost**;
 * - tasks with a reference image (an uploaded image's UUID);
 * - WebSocket sessions that connect, authenticate, run a few tasks and close.
 *
 * Prints one line per minute: resident memory of the server, the slope of RSS over the run so
 * far (least squares over per-second samples, MB/min), 5xx answers, lost tasks, other errors,
 * requests done and the p99 of sync requests. Ends with a summary; exits non-zero on a 5xx or a
 * lost task.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RawWsClient } from '../test/helpers/ws-client.ts';
import { TEST_KEY } from '../test/helpers/kiln-server.ts';
import { postTasks, residentMb, startChild } from './bench-load.ts';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '30' }, concurrency: { type: 'string', default: '6' } } });
const minutes = Number(values.minutes);
const concurrency = Number(values.concurrency);
if (!(minutes > 0) || !(concurrency > 0)) throw new Error('usage: npm run soak -- --minutes <n> [--concurrency <n>]');

const PROMPTS = [
  'a harbour town at golden hour, boats, a lighthouse, mist over the water',
  'a festival in a hillside village plaza, lanterns and a dragon kite above tiled rooftops',
  'snowy mountains and a pine forest under a starry night sky with an aurora',
  'a rainy neon city street at dusk, an airship, reflections, watercolor',
];
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

interface Counters {
  requests: number;
  serverErrors: number;
  otherErrors: number;
  lost: number;
  webhooks: number;
  wsSessions: number;
  latencies: number[];
}
const total: Counters = { requests: 0, serverErrors: 0, otherErrors: 0, lost: 0, webhooks: 0, wsSessions: 0, latencies: [] };
let minute: Counters = { ...total, latencies: [] };
const count = (field: 'requests' | 'serverErrors' | 'otherErrors' | 'lost' | 'webhooks' | 'wsSessions', by = 1): void => {
  total[field] += by;
  minute[field] += by;
};
const errorsSeen = new Map<string, number>();
const noteError = (what: string): void => {
  errorsSeen.set(what, (errorsSeen.get(what) ?? 0) + 1);
  count('otherErrors');
};

// Webhooks: a loopback receiver resolving the wait of each async task.
const webhookWaits = new Map<string, () => void>();
const receiver = createServer((request: IncomingMessage, response) => {
  let body = '';
  request.on('data', (chunk: Buffer) => (body += chunk.toString()));
  request.on('end', () => {
    response.writeHead(200).end();
    count('webhooks');
    try {
      const parsed = JSON.parse(body) as { data?: { taskUUID?: string }[]; errors?: { taskUUID?: string }[] };
      for (const item of [...(parsed.data ?? []), ...(parsed.errors ?? [])]) if (item.taskUUID) webhookWaits.get(item.taskUUID)?.();
    } catch {
      noteError('webhook body not JSON');
    }
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;

const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-soak-'));
const server = await startChild('src/main.ts', ['serve'], { KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: 'info', KILN_ALLOW_PRIVATE_URLS: 'true' });
const pid = server.child.pid!;
const wsUrl = `${server.url.replace(/^http/, 'ws')}/v1`;
const deadline = Date.now() + minutes * 60_000;

const inference = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  taskType: 'imageInference',
  taskUUID: randomUUID(),
  model: 'kiln:studio@1',
  positivePrompt: pick(PROMPTS),
  width: 256,
  height: 256,
  outputFormat: pick(['JPG', 'PNG', 'WEBP']),
  ...extra,
});

/** One REST request; counts 5xx and error answers; returns the body. */
async function rest(tasks: Record<string, unknown>[], sync: boolean): Promise<any> {
  const result = await postTasks(server.url, tasks);
  count('requests');
  if (result.status >= 500) count('serverErrors');
  else if (result.status !== 200 || result.body?.errors?.length) noteError(`${result.status} ${result.body?.errors?.[0]?.code ?? ''}`);
  if (sync && result.status === 200) {
    total.latencies.push(result.ms);
    minute.latencies.push(result.ms);
  }
  return result.body;
}

let referenceUUID: string | undefined;
async function reference(): Promise<string> {
  if (referenceUUID) return referenceUUID;
  // A small image made by the server itself, uploaded back as a reference.
  const made = await rest([inference({ width: 512, height: 512, outputType: 'base64Data', outputFormat: 'PNG' })], false);
  const base64 = made?.data?.[0]?.imageBase64Data as string | undefined;
  if (!base64) throw new Error('could not make a reference image');
  const uploaded = await rest([{ taskType: 'imageUpload', taskUUID: randomUUID(), image: `data:image/png;base64,${base64}` }], false);
  referenceUUID = uploaded?.data?.[0]?.imageUUID as string;
  return referenceUUID;
}

async function asyncTask(): Promise<void> {
  const task = inference({ deliveryMethod: 'async', webhookURL: receiverUrl, numberResults: pick([1, 2]) });
  const uuid = task.taskUUID as string;
  const hooked = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 60_000);
    webhookWaits.set(uuid, () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  await rest([task], false);
  const delivered = await hooked;
  webhookWaits.delete(uuid);
  if (delivered) return;
  // No webhook within a minute: the task is lost unless getResponse shows it ended.
  const poll = await rest([{ taskType: 'getResponse', taskUUID: uuid }], false);
  const items = [...(poll?.data ?? []), ...(poll?.errors ?? [])] as { status?: string }[];
  if (items.length === 0 || items.some((item) => item.status === 'processing')) count('lost');
}

async function wsSession(): Promise<void> {
  const client = await RawWsClient.connect(wsUrl);
  try {
    const auth = await client.authenticate(TEST_KEY);
    if (!auth.data) noteError('ws authentication');
    count('wsSessions');
    for (let i = 0; i < 3; i++) {
      const task = inference();
      const started = performance.now();
      client.send([task]);
      const frame = await client.next(client.forTask(task.taskUUID as string), 60_000);
      count('requests');
      if (frame.errors?.length) noteError(`ws ${frame.errors[0].code}`);
      else {
        total.latencies.push(performance.now() - started);
        minute.latencies.push(performance.now() - started);
      }
    }
  } finally {
    client.close();
  }
}

const kinds: (() => Promise<unknown>)[] = [
  () => rest([inference()], true),
  () => rest([inference({ outputType: 'base64Data' })], true),
  () => rest([inference({ width: 1024, height: 1024, outputFormat: 'JPG' })], true),
  asyncTask,
  async () => rest([inference({ positivePrompt: 'a garden in the palette of <<<image_1>>>', inputs: { referenceImages: [await reference()] } })], true),
  wsSession,
];

async function loop(): Promise<void> {
  while (Date.now() < deadline) {
    try {
      await pick(kinds)();
    } catch (error) {
      noteError(error instanceof Error ? error.message.slice(0, 80) : String(error));
    }
  }
}

const samples: [number, number][] = [];
const started = Date.now();
const slope = (): number => {
  // Least squares over the samples so far, in MB per minute.
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((s, [x]) => s + x, 0) / n;
  const my = samples.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = samples.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = samples.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
};
const p99 = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.99)] ?? 0;
const sampler = setInterval(() => {
  void residentMb(pid).then((m) => samples.push([(Date.now() - started) / 60_000, m.rss]), () => undefined);
}, 1_000);
let minuteNo = 0;
const report = async (): Promise<void> => {
  minuteNo++;
  const m = await residentMb(pid);
  console.log(
    `minute ${String(minuteNo).padStart(2)}: rss ${m.rss.toFixed(0)} MB (peak ${m.peak.toFixed(0)}), slope ${slope().toFixed(2)} MB/min, ` +
      `5xx ${minute.serverErrors}, lost ${minute.lost}, other errors ${minute.otherErrors}, requests ${minute.requests}, ` +
      `webhooks ${minute.webhooks}, ws sessions ${minute.wsSessions}, p99 ${p99(minute.latencies).toFixed(0)} ms`,
  );
  minute = { requests: 0, serverErrors: 0, otherErrors: 0, lost: 0, webhooks: 0, wsSessions: 0, latencies: [] };
};
const reporter = setInterval(() => void report(), 60_000);

console.log(`soak: ${minutes} min, ${concurrency} clients, server ${server.url} (pid ${pid}, started in ${(server.startMs / 1000).toFixed(1)} s)`);
await Promise.all(Array.from({ length: concurrency }, loop));
clearInterval(reporter);
clearInterval(sampler);
if (minute.requests > 0) await report();
const end = await residentMb(pid);
await server.close();
await new Promise<void>((resolve) => receiver.close(() => resolve()));
await rm(dataDir, { recursive: true, force: true });
console.log(
  `summary: ${total.requests} requests, ${total.webhooks} webhooks, ${total.wsSessions} ws sessions; 5xx ${total.serverErrors}, lost ${total.lost}, ` +
    `other errors ${total.otherErrors}; p99 ${p99(total.latencies).toFixed(0)} ms; rss at end ${end.rss.toFixed(0)} MB, peak ${end.peak.toFixed(0)} MB, slope ${slope().toFixed(2)} MB/min`,
);
if (errorsSeen.size > 0) console.log(`other errors by kind: ${JSON.stringify(Object.fromEntries(errorsSeen))}`);
process.exit(total.serverErrors > 0 || total.lost > 0 ? 1 : 0);
