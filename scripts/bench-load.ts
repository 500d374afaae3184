/**
 * Helpers of `npm run bench` and `npm run soak`: servers as child processes on loopback, a
 * closed-loop load generator, and a sampler of a child's resident memory.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { TEST_KEY } from '../test/helpers/kiln-server.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ChildStats {
  readonly statements: number;
  readonly commits: number;
  readonly mainThreadActiveMs: number;
  readonly cpuMs: number;
}

export interface BenchChild {
  readonly url: string;
  readonly child: ChildProcess;
  /** Milliseconds from spawn until the server printed its address. */
  readonly startMs: number;
  /** Figures of a `bench-server.ts` child (undefined for other scripts). */
  stats(): Promise<ChildStats | undefined>;
  close(): Promise<void>;
}

/**
 * Starts `script` (relative to the repository) with tsx as a child with an IPC channel and waits
 * for its `{"listening": url}` line (bench-server, ceiling-server) or Kiln's `kiln is listening` log line.
 */
export async function startChild(script: string, args: string[] = [], env: Record<string, string> = {}): Promise<BenchChild> {
  const started = performance.now();
  const child = fork(script, args, {
    cwd: ROOT,
    // Built JavaScript (dist/) runs as `npm start` runs it, without the TypeScript loader.
    execArgv: [...(script.endsWith('.js') ? ['--enable-source-maps'] : ['--import', 'tsx']), ...(process.env.BENCH_CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
    env: { ...process.env, KILN_API_KEYS: TEST_KEY, KILN_PORT: '0', KILN_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`${script} did not start: ${stderr}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}: ${stderr}`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        const address = parsed.listening ?? (parsed.msg === 'kiln is listening' ? parsed.url : undefined);
        if (typeof address !== 'string') continue;
        clearTimeout(timer);
        resolve(address.replace('localhost', '127.0.0.1'));
      }
    });
  });
  const startMs = performance.now() - started;
  return {
    url,
    child,
    startMs,
    stats: () =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 2_000);
        child.once('message', (message: ChildStats & { type: string }) => {
          clearTimeout(timer);
          resolve(message);
        });
        child.send({ type: 'stats' });
      }),
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** A keep-alive client for loopback load (undici, one connection per request in flight). */
export const agent = new Agent({ connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });

export interface PostResult {
  readonly status: number;
  readonly body: any;
  readonly ms: number;
}

/** POSTs `tasks` to `<url>/v1` with the test key. */
export async function postTasks(url: string, tasks: unknown[]): Promise<PostResult> {
  const started = performance.now();
  const response = await request(`${url}/v1`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_KEY}` },
    body: JSON.stringify(tasks),
  });
  const text = await response.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.statusCode, body, ms: performance.now() - started };
}

/**
 * Closed-loop load: `inFlight` requests always outstanding for `seconds` (after `warmSeconds`
 * not counted). Answers requests per second and the failures (non-200 or an `errors` array).
 */
export async function closedLoop(
  send: () => Promise<PostResult>,
  options: { inFlight: number; seconds: number; warmSeconds?: number },
): Promise<{ perSecond: number; done: number; warmDone: number; failed: number; p99: number }> {
  const warmUntil = performance.now() + (options.warmSeconds ?? 1) * 1000;
  const endAt = warmUntil + options.seconds * 1000;
  let done = 0;
  let warmDone = 0;
  let failed = 0;
  const latencies: number[] = [];
  const loop = async (): Promise<void> => {
    while (performance.now() < endAt) {
      const result = await send().catch(() => ({ status: 0, body: undefined, ms: 0 }));
      const now = performance.now();
      if (now < warmUntil || now > endAt) {
        warmDone++;
        continue;
      }
      if (result.status !== 200 || (result.body as { errors?: unknown[] })?.errors?.length) failed++;
      else done++;
      latencies.push(result.ms);
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, loop));
  latencies.sort((a, b) => a - b);
  return { perSecond: done / options.seconds, done, warmDone, failed, p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0 };
}

/** VmRSS and VmHWM (peak resident) of a process, in MB, from /proc (Linux only). */
export async function residentMb(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}
