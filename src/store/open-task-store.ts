import path from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type LogConfig } from 'kysely';
import { SqliteCheckpointer } from './sqlite-checkpointer.ts';
import { withStatementCache } from './sqlite-statement-cache.ts';
import type pg from 'pg';
import type { Logger } from '../shared/logger.ts';
import { maskUrl } from '../shared/service-url.ts';
import { KyselyTaskStore } from './kysely-task-store.ts';
import { migrateToLatest } from './migrations.ts';
import { preparingClient } from './pg-prepared.ts';
import type { StoreSchema } from './schema.ts';
import type { TaskStore } from './task-store.ts';

/** Sees every statement the store sends (SQL with placeholders, and its parameters). */
export type QueryObserver = (sql: string, parameters: readonly unknown[]) => void;

export interface OpenTaskStoreOptions {
  /** A `postgres://` or `postgresql://` URL selects PostgreSQL; absent (or anything else), SQLite at `sqliteFile`. */
  readonly databaseUrl?: string | undefined;
  /** The SQLite database file (its folder must exist); created and migrated on first open. */
  readonly sqliteFile: string;
  readonly logger?: Logger | undefined;
  /** PostgreSQL connections in the pool. Default 10. */
  readonly poolSize?: number | undefined;
  /**
   * PostgreSQL: run every statement as a named prepared statement, parsed once per connection
   * (see `preparingClient`). Default true; turn it off behind a pooler that hands one session's
   * statements to several server connections (PgBouncer's transaction mode before 1.21).
   */
  readonly preparedStatements?: boolean | undefined;
  /** How long the start waits for PostgreSQL to answer before it gives up. Default 5000 ms. */
  readonly connectTimeoutMs?: number | undefined;
  /** Called with every statement (tests use it to check query plans). */
  readonly onQuery?: QueryObserver | undefined;
  /**
   * SQLite: checkpoint the write-ahead log on a worker thread instead of in the commits of this
   * connection (the server sets it; short-lived openers such as the CLI keep SQLite's default).
   */
  readonly backgroundCheckpoints?: boolean | undefined;
}

const DEFAULT_POOL_SIZE = 10;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const POOL_WAIT_TIMEOUT_MS = 30_000;
const SQLITE_BUSY_TIMEOUT_MS = 5_000;

/** Whether the URL names a PostgreSQL database. */
export function isPostgresUrl(url: string | undefined): url is string {
  return url !== undefined && /^postgres(ql)?:\/\//i.test(url);
}

/**
 * Opens the task store on PostgreSQL (`databaseUrl`) or SQLite (`sqliteFile`) and migrates its
 * schema to the latest version. Rejects when the database cannot be reached (within the
 * connect timeout, naming the URL with its password masked) or a migration fails.
 */
export async function openTaskStore(options: OpenTaskStoreOptions): Promise<TaskStore> {
  const log = queryLog(options.onQuery);
  if (isPostgresUrl(options.databaseUrl)) return openPostgres(options.databaseUrl, options, log);
  return openSqlite(options.sqliteFile, options, log);
}

function queryLog(onQuery: QueryObserver | undefined): LogConfig | undefined {
  if (onQuery === undefined) return undefined;
  return (event) => {
    if (event.level === 'query') onQuery(event.query.sql, event.query.parameters);
  };
}

/**
 * Parsers for this pool only (pg's global parsers stay as they are): INT8 (timestamps, counts)
 * and NUMERIC come back as JS numbers. Epoch milliseconds are far below 2^53.
 */
const NUMBER_OIDS = new Set([20 /* int8 */, 1700 /* numeric */]);
const poolTypes = (driver: typeof pg) => ({
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    NUMBER_OIDS.has(oid) && format !== 'binary' ? Number : driver.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
});

/** The PostgreSQL driver, loaded when a database URL asks for it (the SQLite default never does). */
const loadPg = async (): Promise<typeof pg> => (await import('pg')).default;

async function openPostgres(url: string, options: OpenTaskStoreOptions, log: LogConfig | undefined): Promise<TaskStore> {
  await probePostgres(url, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  const driver = await loadPg();
  const pool = new driver.Pool({
    connectionString: url,
    max: options.poolSize ?? DEFAULT_POOL_SIZE,
    // Also how long a statement waits for a free connection when all are busy: generous, yet never forever.
    connectionTimeoutMillis: POOL_WAIT_TIMEOUT_MS,
    application_name: 'kiln',
    types: poolTypes(driver),
    ...(options.preparedStatements === false ? {} : { Client: preparingClient(driver) }),
  });
  // An idle connection that breaks (a server restart) is reported here; unheard, it would end the process.
  pool.on('error', (error) => options.logger?.warn({ err: error, database: maskUrl(url) }, 'PostgreSQL connection lost'));
  // A connection cut while checked out (between the statements of one call) errors on the client
  // itself, which the pool does not listen to; the statement in flight fails on its own.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = new Kysely<StoreSchema>({ dialect: new PostgresDialect({ pool }), ...(log ? { log } : {}) });
  try {
    await migrateToLatest(db, 'postgres', options.logger);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  const max = options.poolSize ?? DEFAULT_POOL_SIZE;
  return new KyselyTaskStore(db, () => ({ max, total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }));
}

/** Fails fast, with the URL (password masked) in the message, when PostgreSQL does not answer at start. */
async function probePostgres(url: string, timeoutMs: number): Promise<void> {
  const client = new (await loadPg()).Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, application_name: 'kiln' });
  // A connection that fails after connect() settled must not become an unhandled 'error' event.
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot connect to PostgreSQL at ${maskUrl(url)}: ${reason}`, { cause: error });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Migrations of one SQLite file in this process run one at a time: the write lock below is
 * taken synchronously, and a second opener waiting on it would block the very thread that
 * must finish the first migration.
 */
const sqliteMigrations = new Map<string, Promise<unknown>>();

async function openSqlite(file: string, options: OpenTaskStoreOptions, log: LogConfig | undefined): Promise<TaskStore> {
  const sqlite = new Database(file);
  const db = new Kysely<StoreSchema>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }), ...(log ? { log } : {}) });
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    const key = path.resolve(file);
    const previous = sqliteMigrations.get(key) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(() => migrateSqlite(sqlite, db, options.logger));
    sqliteMigrations.set(key, current);
    try {
      await current;
    } finally {
      if (sqliteMigrations.get(key) === current) sqliteMigrations.delete(key);
    }
  } catch (error) {
    await db.destroy();
    throw error;
  }
  if (!options.backgroundCheckpoints) return new KyselyTaskStore(db);
  let checkpointer: SqliteCheckpointer;
  try {
    checkpointer = await SqliteCheckpointer.start(sqlite, file, { ...(options.logger ? { logger: options.logger } : {}) });
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return new KyselyTaskStore(db, undefined, () => checkpointer.stop());
}

/**
 * kysely does not lock SQLite migrations, nor run them in a transaction; another process may
 * open the same file at the same moment. `BEGIN IMMEDIATE` takes the write lock (waiting up to
 * the busy timeout), so the migrations run once, atomically, and the other opener then finds
 * them done. kysely's statements run on this same connection, inside this transaction.
 */
async function migrateSqlite(sqlite: Database.Database, db: Kysely<StoreSchema>, logger: Logger | undefined): Promise<void> {
  sqlite.exec('BEGIN IMMEDIATE');
  try {
    await migrateToLatest(db, 'sqlite', logger);
    sqlite.exec('COMMIT');
  } catch (error) {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    throw error;
  }
}
