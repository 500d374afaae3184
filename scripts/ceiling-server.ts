/**
 * The ceiling the small-task bench compares Kiln with: a bare fastify + better-sqlite3 server
 * doing the same bookkeeping per request as a task (insert a row, update it, reply with JSON),
 * with prepared statements and nothing else. Run as a child of `npm run bench`; it prints its
 * URL on stdout as `{"listening": "http://127.0.0.1:<port>"}`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import Fastify from 'fastify';

const dir = mkdtempSync(path.join(tmpdir(), 'kiln-ceiling-'));
const db = new Database(path.join(dir, 'ceiling.sqlite'));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec(`CREATE TABLE tasks (task_uuid TEXT PRIMARY KEY, request TEXT NOT NULL, status TEXT NOT NULL,
  created_at INTEGER NOT NULL, finished_at INTEGER)`);
const insert = db.prepare('INSERT INTO tasks (task_uuid, request, status, created_at) VALUES (?, ?, ?, ?)');
const update = db.prepare('UPDATE tasks SET status = ?, finished_at = ? WHERE task_uuid = ?');

const app = Fastify({ logger: false });
app.post('/v1', async (request, reply) => {
  if (request.headers.authorization === undefined) return reply.code(401).send({ errors: [{ code: 'missingApiKey' }] });
  const tasks = request.body as { taskUUID: string }[];
  const data = tasks.map((task) => {
    const now = Date.now();
    insert.run(task.taskUUID, JSON.stringify(task), 'queued', now);
    update.run('done', Date.now(), task.taskUUID);
    return { taskType: 'imageInference', taskUUID: task.taskUUID, imageUUID: task.taskUUID, imageURL: `http://localhost/image/${task.taskUUID}.jpg` };
  });
  return { data };
});
const listening = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ listening })}\n`);
const stop = (): void => {
  void app.close().then(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);
