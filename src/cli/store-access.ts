import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from '../config/config.ts';
import { openTaskStore } from '../store/open-task-store.ts';
import type { TaskStore } from '../store/task-store.ts';

/** Where a command that acts on the store writes (the same shape for every such command). */
export interface StoreCommandIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  out(text: string): void;
  err(text: string): void;
}

/**
 * Opens the store the server would use (KILN_DATABASE_URL, else the SQLite file in the data dir),
 * for commands that act on it directly (`kiln keys`, `kiln usage`, `kiln deliveries`). A bad
 * configuration is printed as one line and answered with exit code 2.
 */
export async function openStoreForCommand(io: StoreCommandIo): Promise<{ config: Config; store: TaskStore } | number> {
  let config: Config;
  try {
    config = loadConfig(io.env, 'serve');
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const sqliteFile = path.join(config.dataDir, 'kiln.sqlite');
  if (config.databaseUrl === undefined) {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    await chmod(config.dataDir, 0o700);
  }
  const store = await openTaskStore({
    ...(config.databaseUrl === undefined ? {} : { databaseUrl: config.databaseUrl }),
    sqliteFile,
    poolSize: 1,
    preparedStatements: config.databasePrepared,
  });
  if (config.databaseUrl === undefined) await chmod(sqliteFile, 0o600);
  return { config, store };
}
