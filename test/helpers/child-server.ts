import { spawn, type ChildProcess } from 'node:child_process';
import { kilnNodeArgs, ROOT } from './compiled-kiln.ts';
import { TEST_KEY } from './kiln-server.ts';


/** Kiln as a real child process (`node <compiled or tsx> main <role>`, see compiled-kiln.ts), for kill, restart and cluster tests. */
export class ChildServer {
  private constructor(
    readonly child: ChildProcess,
    /** Every JSON log line the child has written so far (it keeps growing). */
    readonly logs: Record<string, unknown>[],
    readonly url: string,
    readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  ) {}

  static async start(dataDir: string, env: Record<string, string> = {}, role: 'serve' | 'api' | 'worker' = 'serve'): Promise<ChildServer> {
    // BENCH_CHILD_NODE_ARGS (e.g. `--cpu-prof`) reaches these children as it does the bench's own.
    const nodeArgs = process.env.BENCH_CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...nodeArgs, ...kilnNodeArgs(), role], {
      cwd: ROOT,
      env: {
        ...process.env,
        KILN_PORT: '0',
        KILN_HOST: '127.0.0.1',
        KILN_DATA_DIR: dataDir,
        KILN_API_KEYS: TEST_KEY,
        KILN_LOG_LEVEL: 'info',
        KILN_WARMUP: 'false',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const logs: Record<string, unknown>[] = [];
    const url = await new Promise<string>((resolve, reject) => {
      let buffer = '';
      const timer = setTimeout(() => reject(new Error(`child did not start: ${stderr}`)), 30_000);
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
          logs.push(parsed);
          if (parsed.msg !== 'kiln is listening') continue;
          clearTimeout(timer);
          // The process's own address, not KILN_PUBLIC_URL (which names the load balancer).
          resolve(String(parsed.listening ?? parsed.url).replace('localhost', '127.0.0.1'));
        }
      });
      void exited.then(() => reject(new Error(`child exited early: ${stderr}`)));
    });
    return new ChildServer(child, logs, url, exited);
  }

  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    return this.exited;
  }
}
