/**
 * `kiln batch prompts.txt|prompts.jsonl`: one task per input line over one WebSocket, at most
 * `--concurrency` at a time. Images become `<out>/<line>-<k>.<ext>` with a `manifest.jsonl`
 * beside them. A rerun skips lines whose files all exist (and leaves them untouched); files are
 * written under a temporary name and renamed, so a killed batch leaves no half files.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { aborted, cancelAndClose, type ClientIo, connect, describeError, exitCodeFor, guarded, parseCommandLine } from './client-io.ts';
import { BatchManifest } from './batch-manifest.ts';
import { parseBatchInput, type BatchLine } from './batch-input.ts';
import { CONNECTION_OPTIONS, EXIT, prepareTask, type PreparedTask, TASK_OPTIONS, type TaskSettings, UsageError } from './generate-options.ts';
import { resultBytes, writeFileAtomic } from './image-files.ts';
import { runInference } from './inference-run.ts';
import { money, seconds } from './live-lines.ts';
import { ConnectionProblem, type RunwareSocket, type WireError } from './runware-socket.ts';

export const BATCH_USAGE = `Usage: kiln batch prompts.txt|prompts.jsonl [options]

Runs one task per input line over one WebSocket and writes <out>/<line>-<k>.<ext> (line: the
1-based line number in the input; k: 1..n) and <out>/manifest.jsonl (one JSON line per image:
line, k, file, imageUUID, seed, cost, prompt). Rerunning the same command skips the lines
whose files all exist, so an interrupted batch resumes where it stopped.

  .txt     one prompt per line; blank lines and lines starting with # are skipped
  .jsonl   one JSON object per line: {"prompt": "...", and optionally "seed", "size",
           "aspect", "tier", "n", "model", "format", "quality", "ref"} overriding the options

      --concurrency C    tasks in flight at once (default 4)
  -o, --out DIR          where to write (default: the current folder)
      --json             one JSON line per image on stdout, also on a terminal
  and every option of kiln generate: --model --size --aspect --tier -n --format --quality
  --seed --ref --server --key (see kiln generate --help)

Exit codes: 0 every line done or skipped, 1 some lines failed, 2 usage (a bad input line
stops the batch before it starts), 3 the server cannot be reached or refuses the key,
130 interrupted (Ctrl-C cancels the tasks in flight).

Examples:
  kiln batch prompts.txt --aspect 3:2 --tier 2k --out renders
  kiln batch shots.jsonl --concurrency 8 -n 2 --format png --json > made.jsonl
`;

const BATCH_OPTIONS = { ...TASK_OPTIONS, ...CONNECTION_OPTIONS, concurrency: { type: 'string' } } as const;

/** Command-line settings under a line's overrides; a line's size replaces --aspect/--tier and back. */
function settingsFor(global: TaskSettings, overrides: TaskSettings): TaskSettings {
  const base = { ...global };
  if (overrides.size !== undefined) {
    delete base.aspect;
    delete base.tier;
  }
  if (overrides.aspect !== undefined || overrides.tier !== undefined) delete base.size;
  return { ...base, ...overrides };
}

interface Job {
  readonly line: BatchLine;
  readonly prepared: PreparedTask;
  readonly files: readonly string[];
}

/** Runs `kiln batch <args>`; resolves with the exit code. */
export async function runBatchCommand(args: readonly string[], io: ClientIo): Promise<number> {
  return guarded('batch', io, async () => {
    const { values, positionals } = parseCommandLine(args, BATCH_OPTIONS);
    if (values.help) {
      io.out(BATCH_USAGE);
      return EXIT.ok;
    }
    if (positionals.length !== 1) throw new UsageError('name one input file: kiln batch prompts.txt');
    const cwd = io.cwd ?? process.cwd();
    const input = path.resolve(cwd, positionals[0] as string);
    const concurrency = values.concurrency === undefined ? 4 : Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError(`--concurrency must be 1 to 64 (got '${values.concurrency}')`);
    let text: string;
    try {
      text = await readFile(input, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${positionals[0]}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    const lines = parseBatchInput(text, /\.(jsonl|ndjson)$/i.test(input));
    // --ref files are relative to the current folder, a line's "ref" to the input file.
    const global: TaskSettings = { ...values, ref: values.ref?.map((ref) => (existsSync(path.resolve(cwd, ref)) ? path.resolve(cwd, ref) : ref)) };
    const outDir = path.resolve(cwd, values.out ?? '.');
    const jobs: Job[] = [];
    for (const line of lines) {
      let prepared: PreparedTask;
      try {
        prepared = await prepareTask(line.prompt, settingsFor(global, line.overrides), path.dirname(input));
      } catch (error) {
        if (error instanceof UsageError) throw new UsageError(`line ${line.line}: ${error.message}`);
        throw error;
      }
      const files = Array.from({ length: prepared.task.numberResults }, (_, k) => `${line.line}-${k + 1}.${prepared.ext}`);
      jobs.push({ line, prepared, files });
    }
    await mkdir(outDir, { recursive: true });
    // Temporary files a killed run left behind (the final names are only ever complete files).
    for (const name of await readdir(outDir)) if (/^\..+\.[0-9a-f]{8}\.part$/.test(name)) await rm(path.join(outDir, name), { force: true });
    const todo = jobs.filter((job) => !job.files.every((file) => existsSync(path.join(outDir, file))));
    const skipped = jobs.length - todo.length;
    const manifest = new BatchManifest(outDir);
    const json = values.json === true || io.isTTY !== true;
    const started = Date.now();
    let done = 0;
    let failed = 0;
    let cost: number | undefined;
    const lineErrors: WireError[] = [];
    const summary = (): string =>
      `kiln batch: ${done} done, ${skipped} skipped, ${failed} failed of ${jobs.length} lines in ${seconds(Date.now() - started)}` +
      `${cost === undefined ? '' : `, total ${money(cost)}`}; manifest ${path.relative(cwd, manifest.file) || manifest.file}\n`;
    if (todo.length === 0) {
      await manifest.compact();
      io.err(summary());
      return EXIT.ok;
    }
    const { socket } = await connect(values, io);
    const inFlight = new Set<string>();
    let stopping = false;
    const runJob = async (job: Job): Promise<void> => {
      const { task } = job.prepared;
      const baseSeed = typeof task.seed === 'number' ? task.seed : undefined;
      let arrived = 0;
      const taken = new Set<number>();
      inFlight.add(task.taskUUID);
      try {
        const outcome = await runInference(socket, task, async (item) => {
          // With a seed, image k is the one with seed S+k-1; otherwise in order of arrival.
          const seed = typeof item.seed === 'number' ? item.seed : null;
          let k = baseSeed !== undefined && seed !== null && seed >= baseSeed && seed < baseSeed + task.numberResults ? seed - baseSeed + 1 : 0;
          if (k === 0 || taken.has(k)) for (k = 1; taken.has(k); k++);
          taken.add(k);
          arrived++;
          const file = `${job.line.line}-${k}.${job.prepared.ext}`;
          const bytes = await resultBytes(item);
          const imageCost = typeof item.cost === 'number' ? item.cost : null;
          if (imageCost !== null) cost = (cost ?? 0) + imageCost;
          const entry = { line: job.line.line, k, file, imageUUID: item.imageUUID, seed, cost: imageCost, prompt: job.line.prompt };
          await manifest.append(entry);
          await writeFileAtomic(path.join(outDir, file), bytes);
          if (json) io.out(`${JSON.stringify({ ...entry, path: path.join(outDir, file) })}\n`);
        });
        if (stopping) return;
        if (outcome.errors.length === 0 && arrived >= task.numberResults) {
          done++;
          if (!json) io.out(`line ${job.line.line}: ${job.files.join(' ')}\n`);
        } else {
          failed++;
          lineErrors.push(...outcome.errors);
          const reason = outcome.errors[0] ? describeError(outcome.errors[0]) : `only ${arrived} of ${task.numberResults} images arrived`;
          io.err(`kiln batch: line ${job.line.line} failed: ${reason}\n`);
        }
      } finally {
        inFlight.delete(task.taskUUID);
      }
    };
    const queue = [...todo];
    let connectionLost: ConnectionProblem | undefined;
    const worker = async (): Promise<void> => {
      for (let job = queue.shift(); job && !stopping; job = queue.shift()) {
        try {
          await runJob(job);
        } catch (error) {
          if (!(error instanceof ConnectionProblem)) throw error;
          connectionLost ??= error;
          stopping = true;
        }
      }
    };
    const workers = Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
    try {
      const outcome = await Promise.race([workers.then(() => 'finished' as const), aborted(io.signal)]);
      if (outcome === 'interrupted') {
        stopping = true;
        await cancelAndClose(socket as RunwareSocket, [...inFlight]);
        await manifest.compact();
        io.err(`kiln batch: interrupted; rerun the same command to resume\n${summary()}`);
        return EXIT.interrupted;
      }
    } finally {
      socket.close();
    }
    await manifest.compact();
    io.err(summary());
    if (connectionLost) {
      io.err(`kiln batch: ${connectionLost.message}; rerun the same command to resume\n`);
      return EXIT.unreachable;
    }
    if (failed === 0) return EXIT.ok;
    const code = exitCodeFor(lineErrors);
    return code === EXIT.ok ? EXIT.taskFailed : code;
  });
}
