/**
 * The PostgreSQL store's named prepared statements (src/store/pg-prepared.ts), on a real
 * PostgreSQL: each text is parsed once per connection, the forms kysely does not use pass
 * through, the name budget holds, and a statement whose table changed under it (another
 * process's migration) is prepared afresh instead of failing from then on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { openTaskStore } from '../src/store/open-task-store.ts';
import { preparingClient } from '../src/store/pg-prepared.ts';
import { freshPostgresDatabase, serviceProblem } from './helpers/services.ts';

const postgresProblem = await serviceProblem('postgres');

describe('PostgreSQL named prepared statements', { skip: postgresProblem }, () => {
  let database: { url: string; drop(): Promise<void> };
  let admin: pg.Client;

  before(async () => {
    database = await freshPostgresDatabase('pg_prepared');
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query('CREATE TABLE probe (id int PRIMARY KEY, label text)');
    await admin.query("INSERT INTO probe VALUES (1, 'one'), (2, 'two')");
  });
  after(async () => {
    await admin?.end();
    await database?.drop();
  });

  /** Runs `body` with a connected client of `preparingClient(pg, capacity)`, ended afterwards. */
  async function withClient(body: (client: pg.Client) => Promise<void>, capacity?: number): Promise<void> {
    const Client = preparingClient(pg, capacity);
    const client = new Client({ connectionString: database.url });
    await client.connect();
    try {
      await body(client);
    } finally {
      await client.end();
    }
  }

  const prepared = async (client: pg.Client): Promise<string[]> =>
    (await client.query<{ statement: string }>({ text: 'SELECT statement FROM pg_prepared_statements ORDER BY statement' })).rows.map((row) => row.statement);

  it('parses each text once per connection and answers as an unnamed statement would', async () => {
    await withClient(async (client) => {
      const first = await client.query('SELECT label FROM probe WHERE id = $1', [1]);
      const second = await client.query('SELECT label FROM probe WHERE id = $1', [2]);
      assert.deepEqual(first.rows, [{ label: 'one' }]);
      assert.deepEqual(second.rows, [{ label: 'two' }]);
      assert.deepEqual(await prepared(client), ['SELECT label FROM probe WHERE id = $1']);
      // A config object (the form the check above uses) and texts without parameters are not named.
      await client.query('SELECT 1');
      await client.query('SELECT 2', []);
      await client.query('BEGIN', []);
      await client.query('ROLLBACK', []);
      assert.deepEqual(await prepared(client), ['SELECT label FROM probe WHERE id = $1']);
    });
  });

  it('names at most `capacity` texts; the rest run unnamed', async () => {
    await withClient(async (client) => {
      for (const id of [1, 2]) {
        await client.query('SELECT id FROM probe WHERE id = $1', [id]);
        await client.query('SELECT label FROM probe WHERE id = $1', [id]);
        const third = await client.query('SELECT id, label FROM probe WHERE id = $1', [id]);
        assert.equal(third.rows.length, 1);
      }
      assert.equal((await prepared(client)).length, 2);
    }, 2);
  });

  it('prepares a statement again when its table changed under it, and fails only the transaction that saw the change', async () => {
    await withClient(async (client) => {
      const text = 'SELECT * FROM probe WHERE id = $1';
      assert.deepEqual((await client.query(text, [1])).rows, [{ id: 1, label: 'one' }]);
      // Another process adds a column (a migration): the prepared plan's result type is stale.
      await admin.query('ALTER TABLE probe ADD COLUMN extra int');
      assert.deepEqual((await client.query(text, [1])).rows, [{ id: 1, label: 'one', extra: null }]);

      await admin.query('ALTER TABLE probe DROP COLUMN extra');
      await client.query('BEGIN');
      await assert.rejects(client.query(text, [1]), (error: Error & { code?: string }) => error.code === '0A000');
      await client.query('ROLLBACK');
      // After the transaction, the text runs under its new name.
      assert.deepEqual((await client.query(text, [2])).rows, [{ id: 2, label: 'two' }]);
    });
  });

  it('prepares a statement again when the server does not have it (a value that failed to serialise left pg believing it parsed)', async () => {
    await withClient(async (client) => {
      const text = 'SELECT $1::jsonb AS v';
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      // pg sends the Parse, then fails on the value before the Bind: the server drops the statement, pg records it.
      await assert.rejects(client.query(text, [circular]));
      assert.deepEqual((await client.query(text, [{ a: 1 }])).rows, [{ v: { a: 1 } }]);
      assert.deepEqual((await client.query(text, [{ a: 2 }])).rows, [{ v: { a: 2 } }]);
    });
  });

  it('keeps the task store working across another process adding a column to its table', async () => {
    const store = await openTaskStore({ databaseUrl: database.url, sqliteFile: '/nonexistent/unused.sqlite', poolSize: 1 });
    try {
      assert.equal(await store.getTask('00000000-0000-4000-8000-000000000001'), undefined);
      await admin.query('ALTER TABLE tasks ADD COLUMN added_later int');
      assert.equal(await store.getTask('00000000-0000-4000-8000-000000000001'), undefined);
    } finally {
      await store.close();
      await admin.query('ALTER TABLE tasks DROP COLUMN IF EXISTS added_later');
    }
  });
});
