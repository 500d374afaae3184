/**
 * `kiln generate "a prompt" …`: one imageInference task over the Runware WebSocket protocol,
 * each image written to `<out>/<seed>-<imageUUID>.<ext>` as it arrives. A live display on a
 * terminal, JSON lines otherwise; Ctrl-C cancels the task and exits 130.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { aborted, cancelAndClose, type ClientIo, connect, describeError, exitCodeFor, guarded, parseCommandLine } from './client-io.ts';
import { CONNECTION_OPTIONS, DEFAULT_MODEL, EXIT, prepareTask, TASK_OPTIONS, UsageError } from './generate-options.ts';
import { imageSize, resultBytes, writeFileAtomic } from './image-files.ts';
import { runInference, type ResultItem } from './inference-run.ts';
import { LiveLines, money, seconds } from './live-lines.ts';
import type { WireError } from './runware-socket.ts';

export const GENERATE_USAGE = `Usage: kiln generate "a prompt" [options]

Makes images over the Runware WebSocket API (Kiln or the hosted service) and writes each one
to <out>/<seed>-<imageUUID>.<ext> as soon as it arrives.

  -m, --model M          model (default ${DEFAULT_MODEL})
      --size WxH         e.g. 2496x1664 (O3: one of its 24 sizes)
      --aspect A         an O3 aspect: 1:1 3:2 2:3 4:3 3:4 9:16 16:9 21:9 (with --tier)
      --tier T           1k (default), 2k or 4k
  -n N                   images, 1–20 (default 1)
      --format F         png, jpg (default) or webp
      --quality Q        encoder quality 20–99
      --seed S           image k gets seed S+k
      --ref FILE|URL     a reference image (repeat for up to 10); files are sent inline
  -o, --out DIR          where to write the files (default: the current folder)
      --json             one JSON line per image, also on a terminal
      --server URL       default $KILN_SERVER or ws://127.0.0.1:8080/v1
      --key K            default $KILN_KEY, $RUNWARE_API_KEY, or for a local server the
                         first line of $KILN_DATA_DIR/api-key.txt (./data/api-key.txt)

Exit codes: 0 done, 1 a task error, 2 usage or a request the server refused as invalid,
3 the server cannot be reached or refuses the key, 130 interrupted (Ctrl-C cancels the task).

Examples:
  kiln generate "a lighthouse on a jade sea at dusk"
  kiln generate "a castle in fog" --aspect 16:9 --tier 2k -n 4 --format png --out shots
  kiln generate "the same scene at night" --ref day.jpg --seed 42 --json
  kiln generate "snowy peaks" --server wss://ws-api.runware.ai/v1 --key $RUNWARE_API_KEY
`;

/** A row's state: waiting, a stage of Kiln's progress items, or its end. */
type RowState = 'waiting' | 'queued' | 'rendering' | 'encoding' | 'storing' | 'uploading' | 'done' | 'failed';
const STAGE_RANK: Readonly<Record<string, number>> = { waiting: 0, queued: 1, rendering: 2, encoding: 3, storing: 4, uploading: 5 };

interface Row {
  state: RowState;
  finishedAt?: number;
  text?: string;
}

/**
 * Kiln's progress items (a Kiln extension) are asked for from Kiln servers only: the hosted
 * Runware API refuses fields it does not know.
 */
function wantsProgress(server: string): boolean {
  try {
    return !/(^|\.)runware\.ai$/i.test(new URL(server).hostname);
  } catch {
    return false;
  }
}

/** Runs `kiln generate <args>`; resolves with the exit code. */
export async function runGenerateCommand(args: readonly string[], io: ClientIo): Promise<number> {
  return guarded('generate', io, async () => {
    const { values, positionals } = parseCommandLine(args, { ...TASK_OPTIONS, ...CONNECTION_OPTIONS });
    if (values.help) {
      io.out(GENERATE_USAGE);
      return EXIT.ok;
    }
    const prompt = positionals.join(' ');
    if (prompt.trim() === '') throw new UsageError('a prompt is needed: kiln generate "a lighthouse at dusk"');
    const cwd = io.cwd ?? process.cwd();
    const prepared = await prepareTask(prompt, values, cwd);
    const outDir = path.resolve(cwd, values.out ?? '.');
    const { socket, server } = await connect(values, io);
    try {
      await mkdir(outDir, { recursive: true });
      const live = io.isTTY === true && !values.json;
      // The live display shows each image's stage when the server is a Kiln.
      const task = live && wantsProgress(server) ? { ...prepared.task, progress: true } : prepared.task;
      const started = Date.now();
      const rows: Row[] = Array.from({ length: task.numberResults }, () => ({ state: 'waiting' }));
      let totalCost: number | undefined;
      const size = prepared.width === undefined ? 'default size' : `${prepared.width}x${prepared.height}`;
      const display = live
        ? new LiveLines(
            io.out,
            () => [
              `${task.model} · ${size} · ${task.numberResults} image${task.numberResults === 1 ? '' : 's'} · ${server}`,
              ...rows.map((row, k) => {
                const label = `  ${String(k + 1).padStart(2)}/${task.numberResults}`;
                const elapsed = seconds((row.finishedAt ?? Date.now()) - started);
                return `${label}  ${row.state.padEnd(9)} ${elapsed.padStart(7)}${row.text ? `  ${row.text}` : ''}`;
              }),
            ],
            io.columns,
          )
        : undefined;
      display?.start();
      const open = (row: Row): boolean => row.state !== 'done' && row.state !== 'failed';
      const finishRow = (state: Row['state'], text: string): void => {
        // Results do not say which image they are: the one furthest along takes it.
        const candidates = rows.filter(open);
        const row =
          candidates.reduce<Row | undefined>((best, r) => (best === undefined || (STAGE_RANK[r.state] ?? 0) > (STAGE_RANK[best.state] ?? 0) ? r : best), undefined) ??
          rows[rows.push({ state: 'waiting' }) - 1]!;
        Object.assign(row, { state, text, finishedAt: Date.now() });
        display?.draw();
      };
      const onProgress = (item: Record<string, unknown>): void => {
        const row = typeof item.imageIndex === 'number' ? rows[item.imageIndex] : undefined;
        if (!row || !open(row) || typeof item.stage !== 'string') return;
        if ((STAGE_RANK[item.stage] ?? 0) > (STAGE_RANK[row.state] ?? 0)) row.state = item.stage as RowState;
        display?.draw();
      };
      const writeImage = async (item: ResultItem): Promise<void> => {
        const bytes = await resultBytes(item);
        const file = path.join(outDir, `${String(item.seed)}-${item.imageUUID}.${prepared.ext}`);
        await writeFileAtomic(file, bytes);
        const cost = typeof item.cost === 'number' ? item.cost : undefined;
        if (cost !== undefined) totalCost = (totalCost ?? 0) + cost;
        const shown = path.relative(cwd, file) || file;
        const dimensions = imageSize(bytes) ?? { width: prepared.width, height: prepared.height };
        if (live) finishRow('done', [money(cost), `seed ${String(item.seed)}`, shown].filter(Boolean).join('  '));
        else {
          io.out(`${JSON.stringify({ path: file, imageUUID: item.imageUUID, seed: item.seed, cost: cost ?? null, width: dimensions.width ?? null, height: dimensions.height ?? null })}\n`);
        }
      };
      const outcome = await Promise.race([runInference(socket, task, writeImage, onProgress), aborted(io.signal)]);
      if (outcome === 'interrupted') {
        await cancelAndClose(socket, [task.taskUUID]);
        display?.stop();
        io.err(`kiln generate: interrupted; asked the server to cancel task ${task.taskUUID}\n`);
        return EXIT.interrupted;
      }
      const errors: WireError[] = [...outcome.errors];
      for (const error of errors) {
        if (live) finishRow('failed', describeError(error));
      }
      display?.stop();
      for (const error of errors) io.err(`kiln generate: ${describeError(error)}\n`);
      if (live) {
        const made = outcome.images.length;
        io.out(`${made} of ${task.numberResults} image${task.numberResults === 1 ? '' : 's'} in ${seconds(Date.now() - started)}${totalCost === undefined ? '' : `, total ${money(totalCost)}`}\n`);
      }
      if (errors.length === 0 && outcome.images.length < task.numberResults) {
        io.err(`kiln generate: only ${outcome.images.length} of ${task.numberResults} images arrived (task ${task.taskUUID})\n`);
        return EXIT.taskFailed;
      }
      return exitCodeFor(errors);
    } finally {
      socket.close();
    }
  });
}
