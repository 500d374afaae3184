/**
 * The server's SQLite store checkpoints its write-ahead log on a worker thread: the server's own
 * connection never does (no commit pays for copying the log into the database), yet the log
 * reaches the database file within a second. A real SQLite file.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { stat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openTaskStore } from '../src/store/open-task-store.ts';

test('a store opened with background checkpoints copies its log into the database by itself, and closes cleanly', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-checkpoints-'));
  const file = path.join(dir, 'kiln.sqlite');
  try {
    const store = await openTaskStore({ sqliteFile: file, backgroundCheckpoints: true });
    try {
      const before = (await stat(file)).size;
      // About 800 KB in 20 transactions (~250 log pages): under SQLite's own checkpoint
      // threshold (1000 pages), so only the background thread moves them into the database file.
      const request = JSON.stringify({ positivePrompt: 'x'.repeat(40_000) });
      const now = Date.now();
      for (let i = 0; i < 20; i++) {
        const taskUUID = randomUUID();
        await store.insertTask(
          { taskUUID, apiKeyId: 'key-1', taskType: 'imageInference', model: 'kiln:studio@1', engine: 'studio', request, status: 'queued', imageCount: 1, createdAt: now, updatedAt: now, finishedAt: null, expiresAt: null },
          [{ taskUUID, index: 0, seed: i, seriesIndex: null, status: 'pending', imageUUID: null, error: null, cost: null, nsfw: null, finishedAt: null }],
        );
      }
      let size = before;
      for (let i = 0; i < 100 && size < before + 600_000; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        size = (await stat(file)).size;
      }
      assert.ok(size >= before + 600_000, `the database file grew from ${before} to ${size} bytes`);
    } finally {
      await store.close();
    }
    // Reopened: everything is there.
    const again = await openTaskStore({ sqliteFile: file });
    try {
      assert.equal((await again.listUnfinishedTasks()).length, 20);
    } finally {
      await again.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
