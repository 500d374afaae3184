import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startKiln, type Kiln } from '../../src/compose.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { Clock } from '../../src/shared/clock.ts';

export const TEST_KEY = 'kiln_test_key_0123456789abcdefghijklmn';

export interface TestServer {
  readonly kiln: Kiln;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `ws://127.0.0.1:<port>/v1` */
  readonly wsUrl: string;
  readonly dataDir: string;
  /** Log lines written so far (JSON objects). */
  readonly logs: Record<string, unknown>[];
  /** Stops the server; removes the data dir unless `keepData`. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

/** Starts a real Kiln on 127.0.0.1:0 with its own data directory and key. */
export async function startTestServer(
  env: Record<string, string> = {},
  options: { dataDir?: string; clock?: Clock } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'kiln-test-')));
  const logs: Record<string, unknown>[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const config = loadConfig({
    KILN_PORT: '0',
    KILN_HOST: '127.0.0.1',
    KILN_DATA_DIR: dataDir,
    KILN_API_KEYS: TEST_KEY,
    KILN_LOG_LEVEL: 'info',
    KILN_STUDIO_THREADS: '2',
    // Suites start dozens of servers; the warm-up is measured by the bench, not paid by each.
    KILN_WARMUP: 'false',
    ...env,
  });
  const kiln = await startKiln(config, { logStream, ...(options.clock ? { clock: options.clock } : {}) });
  return {
    kiln,
    url: kiln.url,
    wsUrl: `${kiln.url.replace(/^http/, 'ws')}/v1`,
    dataDir,
    logs,
    async close({ keepData = false } = {}) {
      await kiln.close(2_000);
      if (!keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** POSTs a JSON body (or a raw string) to `/v1` with the test key. */
export async function post(
  server: { url: string },
  body: unknown,
  options: { key?: string | null; raw?: boolean; contentType?: string } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json' };
  const key = options.key === undefined ? TEST_KEY : options.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const response = await fetch(`${server.url}/v1`, {
    method: 'POST',
    headers,
    body: options.raw ? (body as string) : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // leave as text
  }
  return { status: response.status, body: parsed, headers: response.headers };
}
