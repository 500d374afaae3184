/**
 * Checkpoints of the SQLite write-ahead log, off the event loop. With SQLite's default, the
 * commit that brings the log to 1000 pages copies it into the database and syncs the file, on
 * the server's one thread, a few times a second under load. Here the server's connection does
 * no checkpoints (`wal_autocheckpoint = 0`) and a worker thread with its own connection runs a
 * PASSIVE one every `intervalMs`. Should the worker fail, the connection checkpoints by itself
 * again, so the log never grows without bound.
 */
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from '../shared/logger.ts';
import { workerEntry } from '../shared/worker-entry.ts';

const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;

export class SqliteCheckpointer {
  private readonly worker: Worker;
  private stopping = false;

  private constructor(worker: Worker) {
    this.worker = worker;
  }

  /** Starts the worker (resolves once its connection is open) and turns the connection's own checkpoints off. */
  static async start(sqlite: Database.Database, file: string, options: { intervalMs?: number; logger?: Logger } = {}): Promise<SqliteCheckpointer> {
    const entry = workerEntry(import.meta.url, 'sqlite-checkpoint-worker');
    const worker = new Worker(entry.filename, { eval: entry.eval, ...(entry.execArgv ? { execArgv: entry.execArgv } : {}), workerData: { file, intervalMs: options.intervalMs ?? 500 } });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: { type?: string }): void => {
        if (message?.type !== 'ready') return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve();
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
    const checkpointer = new SqliteCheckpointer(worker);
    sqlite.pragma('wal_autocheckpoint = 0');
    const fallBack = (why: string): void => {
      if (checkpointer.stopping) return;
      checkpointer.stopping = true;
      if (sqlite.open) sqlite.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
      options.logger?.warn({ reason: why }, 'the SQLite checkpoint thread stopped; the server connection checkpoints by itself again');
    };
    worker.on('message', (message: { type?: string; message?: string }) => {
      if (message?.type === 'error') options.logger?.debug({ err: message.message }, 'an SQLite checkpoint did not run');
    });
    worker.on('error', (error) => fallBack(error.message));
    worker.on('exit', (code) => fallBack(`exit ${code}`));
    worker.unref();
    return checkpointer;
  }

  /** Runs one last checkpoint and stops the worker. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('stop');
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
