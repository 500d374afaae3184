/**
 * What the client commands (`generate`, `batch`, `tasks`) get from `main.ts`, and the pieces
 * they share: argument parsing with usage errors, opening the socket with exit code 3, and
 * one-line error messages.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { apiKey, EXIT, serverUrl, UsageError } from './generate-options.ts';
import { ConnectionProblem, RunwareSocket, type WireError } from './runware-socket.ts';

/** Streams, environment and terminal facts, so tests can run a command in-process too. */
export interface ClientIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  out(text: string): void;
  err(text: string): void;
  /** The folder relative paths are read from and written to (default: `process.cwd()`). */
  readonly cwd?: string;
  /** True when stdout is a terminal: live display instead of JSON lines. */
  readonly isTTY?: boolean;
  readonly columns?: number;
  /** Aborted on Ctrl-C: the command cancels its tasks and returns 130. */
  readonly signal?: AbortSignal;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** `util.parseArgs` with a readable `UsageError` instead of Node's error codes. */
export function parseCommandLine<T extends Options>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] ?? '' : String(error);
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/, '').replace(/^Unknown option/, 'unknown option'));
  }
}

/** `code: message` of a Runware error, one line. */
export function describeError(error: WireError): string {
  const parameter = typeof error.parameter === 'string' ? ` (${error.parameter})` : '';
  return `${error.code}: ${String(error.message).replace(/\s+/g, ' ')}${parameter}`;
}

/** Exit code for task errors: a refused key is 3, a request the server called invalid is 2, else 1. */
export function exitCodeFor(errors: readonly WireError[]): number {
  if (errors.some((e) => e.code === 'invalidApiKey')) return EXIT.unreachable;
  if (errors.length > 0 && errors.every((e) => /^(invalid|unsupported|missing)/.test(e.code) || e.code === 'tooManyImages')) return EXIT.usage;
  return errors.length > 0 ? EXIT.taskFailed : EXIT.ok;
}

/** Resolves the server and key from options and environment, then connects and authenticates. */
export async function connect(
  values: { server?: string | undefined; key?: string | undefined },
  io: ClientIo,
): Promise<{ socket: RunwareSocket; server: string }> {
  const server = serverUrl(values.server, io.env);
  const key = apiKey(values.key, io.env, server, io.cwd ?? process.cwd());
  return { socket: await RunwareSocket.open(server, key), server };
}

/**
 * Runs a command body, turning usage errors into exit 2 and connection problems into exit 3,
 * each as one line on stderr. Anything else is a bug: one line too, exit 1, no stack.
 */
export async function guarded(name: string, io: ClientIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`kiln ${name}: ${error.message}\n(kiln ${name} --help shows every option)\n`);
      return EXIT.usage;
    }
    if (error instanceof ConnectionProblem) {
      io.err(`kiln ${name}: ${error.message}\n`);
      return EXIT.unreachable;
    }
    io.err(`kiln ${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.taskFailed;
  }
}

/**
 * Sends `cancelTask` for each task (a Kiln extension: other servers answer with an error,
 * which is fine), waits up to `waitMs` for the answers, and closes the socket.
 */
export async function cancelAndClose(socket: RunwareSocket, taskUUIDs: readonly string[], waitMs = 1_000): Promise<void> {
  await Promise.allSettled(
    taskUUIDs.map((taskUUID) => socket.request([{ taskType: 'cancelTask', taskUUID }], taskUUID.toLowerCase(), waitMs)),
  );
  socket.close();
}

/** A promise that resolves when `signal` aborts (never, without one). */
export function aborted(signal: AbortSignal | undefined): Promise<'interrupted'> {
  return new Promise((resolve) => {
    if (!signal) return;
    if (signal.aborted) resolve('interrupted');
    else signal.addEventListener('abort', () => resolve('interrupted'), { once: true });
  });
}
