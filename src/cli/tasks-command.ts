/**
 * `kiln tasks show|watch <taskUUID>`: the state of every image of a task, read with
 * `getResponse` over the WebSocket (so only the key that created the task can read it).
 */
import { type ClientIo, connect, describeError, exitCodeFor, guarded, parseCommandLine, aborted } from './client-io.ts';
import { CONNECTION_OPTIONS, EXIT, UsageError } from './generate-options.ts';
import { money } from './live-lines.ts';
import type { RunwareSocket, WireError } from './runware-socket.ts';

export const TASKS_USAGE = `Usage: kiln tasks <show|watch> <taskUUID> [options]

  show <taskUUID>     the state of every image of the task (getResponse)
  watch <taskUUID>    polls getResponse until no image is processing, printing each change

      --interval S       seconds between polls for watch (default 1)
      --json             the getResponse answer as JSON (show), one JSON line per change (watch)
      --server URL       default $KILN_SERVER or ws://127.0.0.1:8080/v1
      --key K            as for kiln generate (only the key that made the task can read it)

Exit codes: 0 the task is readable and no image failed, 1 an image failed or the task is
unknown, 2 usage, 3 the server cannot be reached or refuses the key, 130 interrupted.

Examples:
  kiln tasks show 0b1c6a4e-5f3d-4c6e-9a9b-1f2e3d4c5b6a
  kiln tasks watch 0b1c6a4e-5f3d-4c6e-9a9b-1f2e3d4c5b6a --interval 2
`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface TaskState {
  readonly items: Record<string, unknown>[];
  readonly errors: WireError[];
}

async function read(socket: RunwareSocket, taskUUID: string): Promise<TaskState> {
  const answer = await socket.request([{ taskType: 'getResponse', taskUUID }], taskUUID.toLowerCase());
  return { items: answer.items, errors: answer.errors };
}

/** One line per image: `#1 success  <imageUUID>  seed …  $…  <url>`. */
function describeImage(item: Record<string, unknown>, index: number): string {
  const parts = [`#${index + 1}`, String(item.status ?? 'success').padEnd(10)];
  if (typeof item.imageUUID === 'string') parts.push(item.imageUUID);
  if (typeof item.seed === 'number') parts.push(`seed ${item.seed}`);
  if (typeof item.cost === 'number') parts.push(money(item.cost));
  if (typeof item.imageURL === 'string') parts.push(item.imageURL);
  else if (typeof item.imageBase64Data === 'string' || typeof item.imageDataURI === 'string') parts.push('(inline image data)');
  return parts.join('  ');
}

function lines(state: TaskState): string[] {
  return [
    ...state.items.map((item, index) => describeImage(item, index)),
    ...state.errors.map((error) => `error       ${describeError(error)}`),
  ];
}

/** Runs `kiln tasks <args>`; resolves with the exit code. */
export async function runTasksCommand(args: readonly string[], io: ClientIo): Promise<number> {
  return guarded('tasks', io, async () => {
    const { values, positionals } = parseCommandLine(args, { ...CONNECTION_OPTIONS, interval: { type: 'string' } });
    const [action, taskUUID] = positionals;
    if (values.help || action === 'help') {
      io.out(TASKS_USAGE);
      return EXIT.ok;
    }
    if (action !== 'show' && action !== 'watch') throw new UsageError(action === undefined ? 'say show or watch' : `unknown tasks command '${action}'`);
    if (taskUUID === undefined || !UUID.test(taskUUID) || positionals.length > 2) throw new UsageError(`kiln tasks ${action} needs one taskUUID`);
    const intervalMs = values.interval === undefined ? 1000 : Number(values.interval) * 1000;
    if (!Number.isFinite(intervalMs) || intervalMs < 100) throw new UsageError(`--interval must be at least 0.1 seconds (got '${values.interval}')`);
    const { socket } = await connect(values, io);
    try {
      const notFound = (state: TaskState): boolean => state.items.length === 0 && state.errors.some((e) => e.code === 'taskNotFound');
      const finalCode = (state: TaskState): number => {
        if (state.errors.length === 0) return EXIT.ok;
        const code = exitCodeFor(state.errors);
        // An unknown task is not a usage mistake of this command: exit 1.
        return code === EXIT.usage || notFound(state) ? EXIT.taskFailed : code;
      };
      if (action === 'show') {
        const state = await read(socket, taskUUID);
        if (values.json) io.out(`${JSON.stringify({ data: state.items, errors: state.errors })}\n`);
        else if (notFound(state)) io.err(`kiln tasks: ${describeError(state.errors[0] as WireError)}\n`);
        else {
          const processing = state.items.filter((item) => item.status === 'processing').length;
          io.out(`task ${taskUUID}: ${state.items.length - processing} ready, ${processing} processing, ${state.errors.length} failed\n`);
          for (const line of lines(state)) io.out(`  ${line}\n`);
        }
        return finalCode(state);
      }
      const previous: string[] = [];
      const interrupted = aborted(io.signal);
      for (;;) {
        const state = await read(socket, taskUUID);
        if (notFound(state)) {
          io.err(`kiln tasks: ${describeError(state.errors[0] as WireError)}\n`);
          return EXIT.taskFailed;
        }
        const now = lines(state);
        now.forEach((line, index) => {
          if (previous[index] === line) return;
          const item = index < state.items.length ? state.items[index] : undefined;
          if (values.json) io.out(`${JSON.stringify(item ?? { error: state.errors[index - state.items.length] })}\n`);
          else io.out(`${new Date().toISOString().slice(11, 19)}  ${line}\n`);
          previous[index] = line;
        });
        if (!state.items.some((item) => item.status === 'processing')) return finalCode(state);
        const outcome = await Promise.race([new Promise((resolve) => setTimeout(resolve, intervalMs)), interrupted]);
        if (outcome === 'interrupted') return EXIT.interrupted;
      }
    } finally {
      socket.close();
    }
  });
}
