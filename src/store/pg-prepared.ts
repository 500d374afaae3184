import type pg from 'pg';

/** Distinct statement texts given a name; the store runs a few dozen, plus variants by list length. */
const DEFAULT_CAPACITY = 512;

/**
 * Errors that mean this connection's copy of a named statement cannot be used, raised before it
 * runs (PostgreSQL checks both when it binds the statement): its table's columns changed since
 * it was prepared ("cached plan must not change result type", SQLSTATE 0A000 from the plan
 * cache; told apart from other 0A000 errors by the server routine, whose name does not depend on
 * the server's language), or the server does not have it (26000: e.g. a Parse that pg recorded
 * although the statement's Bind failed on the client, or a pooler that moved the session).
 */
function isUnusableStatement(error: unknown): boolean {
  const { code, routine } = (error ?? {}) as { code?: unknown; routine?: unknown };
  return (code === '0A000' && routine === 'RevalidateCachedQuery') || code === '26000';
}

type QueryResult = pg.QueryResult<Record<string, unknown>>;

/**
 * A `pg` client class for the store's pool that runs every statement kysely sends as a named
 * prepared statement. kysely sends its SQL as unnamed statements, which PostgreSQL parses and
 * plans again on every run: in the cluster bench, parsing and binding took longer than running
 * (1.9 + 1.8 ms against 1.7 ms of the server's time per task, every statement a round trip on
 * the task's path). `pg` parses a named statement once per connection and then only binds and
 * runs it, and after a few runs PostgreSQL keeps a generic plan for it.
 *
 * Names are given per text, the same in every connection of the process, up to `capacity` texts
 * (past that, texts run unnamed as before). A statement prepared before another process changed
 * the table's columns (a migration during a rolling upgrade) fails with "cached plan must not
 * change result type", and one the server no longer has with "prepared statement … does not
 * exist"; neither has run. Its text then gets a new name, so that every connection prepares it
 * afresh, and the statement is run again at once when it ran on its own; inside a transaction
 * PostgreSQL has already failed the transaction, so the error goes to the caller.
 */
export function preparingClient(driver: typeof pg, capacity = DEFAULT_CAPACITY): typeof pg.Client {
  const names = new Map<string, string>();
  let next = 1;
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (name === undefined && names.size < capacity) {
      name = `kiln_${next++}`;
      names.set(text, name);
    }
    return name;
  };
  const renamed = (text: string, stale: string): string => {
    if (names.get(text) === stale) names.set(text, `kiln_${next++}`);
    return names.get(text)!;
  };

  class PreparingClient extends driver.Client {
    // kysely calls `query(sql, parameters)` and awaits the promise; every other form (a config
    // object, a callback, a cursor) goes to pg as it is.
    override query(...args: unknown[]): never {
      const [text, values] = args;
      // Statements without parameters (begin, commit, rollback) cost little to parse and stay
      // unnamed: a rollback must never depend on a statement the server might not have.
      const name = args.length === 2 && typeof text === 'string' && Array.isArray(values) && values.length > 0 ? nameOf(text) : undefined;
      const query = super.query as (...a: unknown[]) => unknown;
      if (name === undefined) return query.apply(this, args) as never;
      return this.named(text as string, values as unknown[], name) as never;
    }

    private async named(text: string, values: unknown[], name: string): Promise<QueryResult> {
      const query = (statement: string): Promise<QueryResult> => super.query<Record<string, unknown>>({ name: statement, text, values });
      try {
        return await query(name);
      } catch (error) {
        if (!isUnusableStatement(error)) throw error;
        const fresh = renamed(text, name);
        if (this.getTransactionStatus() !== 'I') throw error;
        return query(fresh);
      }
    }
  }
  return PreparingClient;
}
