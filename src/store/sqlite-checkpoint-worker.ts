/**
 * Worker-thread entry of `SqliteCheckpointer`: its own connection to the SQLite file, copying the
 * write-ahead log into the database every `intervalMs` (a PASSIVE checkpoint: it never waits for,
 * nor blocks, the server's connection). Stops, after one last checkpoint, on a `'stop'` message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { file, intervalMs } = workerData as { file: string; intervalMs: number };
const db = new Database(file);
// A checkpoint that finds the database busy waits a little, then tries again next time.
db.pragma('busy_timeout = 100');
const checkpoint = (): void => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    parentPort?.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
};
const timer = setInterval(checkpoint, intervalMs);
parentPort?.on('message', (message: unknown) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort?.close();
});
parentPort?.postMessage({ type: 'ready' });
