import type Database from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

/** Distinct statement texts kept prepared; the store runs a few dozen, plus variants by list length. */
const DEFAULT_CAPACITY = 256;

/**
 * The database handle given to kysely's SQLite dialect, with its prepared statements kept.
 * kysely prepares every statement it runs, and preparing (parsing and planning the SQL) cost
 * about a third of the store's time per task in the bench, although the store runs the same
 * texts over and over. A better-sqlite3 statement can be run again with new parameters, and
 * kysely runs one statement at a time on its one connection, so a prepared statement is never
 * in use twice at once (the store does not stream results, the one case that would hold a
 * statement open). The least recently used texts are dropped past `capacity`. SQLite prepares a
 * kept statement again by itself if the schema changes under it.
 */
export function withStatementCache(sqlite: Database.Database, capacity = DEFAULT_CAPACITY): SqliteDatabase {
  const kept = new Map<string, Database.Statement>();
  return {
    close: () => {
      kept.clear();
      sqlite.close();
    },
    prepare(sql: string) {
      let statement = kept.get(sql);
      if (statement) {
        // Most recently used last, so the first key is the one to drop.
        kept.delete(sql);
      } else {
        statement = sqlite.prepare(sql);
        if (kept.size >= capacity) kept.delete(kept.keys().next().value!);
      }
      kept.set(sql, statement);
      return statement;
    },
  };
}
