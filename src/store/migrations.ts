/**
 * The task store's schema history, as kysely migrations held in code (the build compiles them
 * to dist/, so nothing is read from disk at run time). Each migration is written with kysely's
 * schema builder and runs on SQLite and PostgreSQL alike; where the two must differ (an
 * auto-increment key, old SQLite data), the dialect is passed in.
 *
 * Never edit a migration that has shipped: add the next one.
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Logger } from '../shared/logger.ts';
import type { StoreDialect } from './schema.ts';

/** Where kysely records the migrations it ran (and its lock row, in `kiln_migrations_lock`). */
export const MIGRATION_TABLE = 'kiln_migrations';
export const MIGRATION_LOCK_TABLE = 'kiln_migrations_lock';

// Epoch milliseconds pass 2^31, so every timestamp is `bigint` (INTEGER affinity on SQLite).
const TIME = 'bigint';

/**
 * Migration 1: the schema the store had before migrations existed. `ifNotExists` everywhere, so
 * a SQLite file made by the old ad-hoc DDL (same tables, same index names) is adopted as it is.
 */
function initial(dialect: StoreDialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('api_keys')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('webhook_secret', 'text')
        .addColumn('created_at', TIME, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('tasks')
        .ifNotExists()
        .addColumn('task_uuid', 'text', (c) => c.primaryKey())
        .addColumn('api_key_id', 'text', (c) => c.notNull())
        .addColumn('task_type', 'text', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('engine', 'text', (c) => c.notNull())
        .addColumn('request', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('image_count', 'integer', (c) => c.notNull())
        .addColumn('created_at', TIME, (c) => c.notNull())
        .addColumn('updated_at', TIME, (c) => c.notNull())
        .addColumn('finished_at', TIME)
        .addColumn('expires_at', TIME)
        .execute();
      await db.schema.createIndex('tasks_status').ifNotExists().on('tasks').columns(['status', 'created_at']).execute();
      await db.schema.createIndex('tasks_expiry').ifNotExists().on('tasks').column('expires_at').execute();

      await db.schema
        // On PostgreSQL, tasks' generations are inserted from JSON rows (json_populate_recordset,
        // store/kysely-task-store.ts), where a key left out is NULL, not the column's default:
        // a column added here later with NOT NULL must be written by fromGeneration.
        .createTable('generations')
        .ifNotExists()
        .addColumn('task_uuid', 'text', (c) => c.notNull().references('tasks.task_uuid').onDelete('cascade'))
        .addColumn('idx', 'integer', (c) => c.notNull())
        .addColumn('seed', 'bigint', (c) => c.notNull())
        .addColumn('series_index', 'integer')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('image_uuid', 'text')
        .addColumn('error', 'text')
        // Not `real`: on PostgreSQL that is float4, and 0.028 would come back as 0.02800000086.
        .addColumn('cost', 'double precision')
        .addColumn('nsfw', 'integer')
        .addColumn('finished_at', TIME)
        .addColumn('engine_state', 'text')
        .addPrimaryKeyConstraint('generations_pkey', ['task_uuid', 'idx'])
        .execute();

      let images = db.schema.createTable('images').ifNotExists();
      // SQLite's rowid alias must be spelled exactly `integer primary key`.
      images =
        dialect === 'sqlite'
          ? images.addColumn('seq', 'integer', (c) => c.primaryKey().autoIncrement())
          : images.addColumn('seq', 'bigserial', (c) => c.primaryKey());
      await images
        .addColumn('image_uuid', 'text', (c) => c.notNull().unique())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('task_uuid', 'text')
        .addColumn('api_key_id', 'text')
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('width', 'integer', (c) => c.notNull())
        .addColumn('height', 'integer', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addColumn('object_key', 'text', (c) => c.notNull())
        .addColumn('created_at', TIME, (c) => c.notNull())
        .addColumn('expires_at', TIME)
        .addColumn('servable', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('images_expiry').ifNotExists().on('images').column('expires_at').execute();

      // Deliveries outlive their task record on purpose (a webhook may still be retrying): no foreign key.
      await db.schema
        .createTable('deliveries')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('task_uuid', 'text', (c) => c.notNull())
        .addColumn('api_key_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('image_uuid', 'text')
        .addColumn('body', 'text')
        .addColumn('object_key', 'text')
        .addColumn('notify_url', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', TIME, (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('created_at', TIME, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('deliveries_pending').ifNotExists().on('deliveries').columns(['status', 'next_attempt_at']).execute();
      await db.schema.createIndex('deliveries_task').ifNotExists().on('deliveries').column('task_uuid').execute();
    },
  };
}

/**
 * Migration 2: what several processes sharing one database need (claim tokens, delivery
 * leases, named leases), the indexes per-task statements were missing, and lower-case taskUUIDs.
 */
function claimsAndLeases(dialect: StoreDialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      // One ADD COLUMN per statement: SQLite takes no more.
      await db.schema.alterTable('tasks').addColumn('claim_token', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('tasks').addColumn('claimed_at', TIME).execute();
      await db.schema.alterTable('deliveries').addColumn('lease_owner', 'text').execute();
      await db.schema.alterTable('deliveries').addColumn('lease_until', TIME).execute();

      await db.schema
        .createTable('leases')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('until', TIME, (c) => c.notNull())
        .execute();

      // Ending a task sets the expiry of its inline images by task_uuid (a full scan per task before).
      await db.schema.createIndex('images_task').ifNotExists().on('images').column('task_uuid').execute();
      // listExpiredImages asks, per expired image, whether an upload of it is still pending.
      await db.schema.createIndex('deliveries_image').ifNotExists().on('deliveries').column('image_uuid').execute();
      // deleteSettledDeliveries cuts by created_at; by status alone it read every settled delivery.
      await db.schema.createIndex('deliveries_settled').ifNotExists().on('deliveries').columns(['status', 'created_at']).execute();

      if (dialect === 'sqlite') {
        // Files from before this migration kept taskUUIDs as sent, matched with COLLATE NOCASE
        // (which images.task_uuid lacked). The store now keeps the lower-case form. Parents
        // first: under NOCASE the children still match them. PostgreSQL never held older data.
        for (const table of ['tasks', 'generations', 'images', 'deliveries'] as const) {
          await db
            .updateTable(table)
            .set((eb) => ({ task_uuid: eb.fn('lower', [eb.ref('task_uuid')]) }))
            .execute();
        }
      }
    },
  };
}

/**
 * Migration 3: the key lifecycle. Keys can be revoked (`revoked_at`), name where they came from
 * (`source`: KILN_API_KEYS keys are reconciled at start), carry a short `hint` for operators,
 * and keep the previous webhook secret for a while after a rotation. `hash_kind` tells bare
 * SHA-256 hashes (every key stored before this migration) from HMAC-SHA256 ones: old rows are
 * re-hashed the first time their key is used, since the key itself was never stored.
 */
function keyLifecycle(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('api_keys').addColumn('hash_kind', 'text', (c) => c.notNull().defaultTo('sha256')).execute();
      await db.schema.alterTable('api_keys').addColumn('revoked_at', TIME).execute();
      await db.schema.alterTable('api_keys').addColumn('source', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('hint', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('previous_webhook_secret', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('previous_webhook_secret_until', TIME).execute();
      // Keys that came from KILN_API_KEYS before sources were recorded, by the label they got.
      await db.updateTable('api_keys').set({ source: 'config' }).where('label', '=', 'configured (KILN_API_KEYS)').execute();
      await db.updateTable('api_keys').set({ source: 'first-start' }).where('label', '=', 'created at first start').execute();
    },
  };
}

/**
 * Migration 4: tenancy (docs/tenancy.md). Per-key limits, fair-queueing weight and budget on
 * `api_keys`, with the key's money counters in integer micro-dollars; `key_holds`, one row per
 * task accepted and not yet ended (its images and the price still held); `usage_ledger`, one
 * row per charged image, keyed by (task, image index) so a charge is written once.
 */
function tenancy(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      for (const [column, type] of [
        ['max_concurrent_images', 'integer'],
        ['max_queued_images', 'integer'],
        ['rate_per_second', 'double precision'],
        ['fair_weight', 'integer'],
        ['budget_micros', 'bigint'],
        ['budget_period', 'text'],
      ] as const) {
        await db.schema.alterTable('api_keys').addColumn(column, type).execute();
      }
      for (const column of ['budget_spent_micros', 'budget_reserved_micros', 'budget_period_start', 'usage_images', 'usage_micros']) {
        await db.schema.alterTable('api_keys').addColumn(column, 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      }
      await db.schema
        .createTable('key_holds')
        .addColumn('task_uuid', 'text', (c) => c.primaryKey())
        .addColumn('api_key_id', 'text', (c) => c.notNull())
        .addColumn('images', 'integer', (c) => c.notNull())
        .addColumn('unit_micros', 'bigint', (c) => c.notNull())
        .addColumn('held_micros', 'bigint', (c) => c.notNull())
        .addColumn('started', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', TIME, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('key_holds_key').on('key_holds').columns(['api_key_id', 'started']).execute();
      await db.schema.createIndex('key_holds_created').on('key_holds').column('created_at').execute();
      await db.schema
        .createTable('usage_ledger')
        .addColumn('task_uuid', 'text', (c) => c.notNull())
        .addColumn('image_index', 'integer', (c) => c.notNull())
        .addColumn('api_key_id', 'text', (c) => c.notNull())
        .addColumn('image_uuid', 'text', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('engine', 'text', (c) => c.notNull())
        .addColumn('width', 'integer', (c) => c.notNull())
        .addColumn('height', 'integer', (c) => c.notNull())
        .addColumn('price_micros', 'bigint', (c) => c.notNull())
        .addColumn('upstream_micros', 'bigint')
        .addColumn('created_at', TIME, (c) => c.notNull())
        .addPrimaryKeyConstraint('usage_ledger_pkey', ['task_uuid', 'image_index'])
        .execute();
      await db.schema.createIndex('usage_ledger_key_time').on('usage_ledger').columns(['api_key_id', 'created_at']).execute();
      await db.schema.createIndex('usage_ledger_time').on('usage_ledger').column('created_at').execute();
    },
  };
}

/**
 * Migration 5: the delivery log. One row per attempt of a webhook or upload (its time, HTTP
 * status or network error, latency), kept as long as its delivery (getDeliveries, kiln deliveries).
 */
function deliveryAttempts(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('delivery_attempts')
        .ifNotExists()
        .addColumn('delivery_id', 'text', (c) => c.notNull())
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('at', TIME, (c) => c.notNull())
        .addColumn('http_status', 'integer')
        .addColumn('error', 'text')
        .addColumn('latency_ms', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('delivery_attempts_pkey', ['delivery_id', 'attempt'])
        .execute();
    },
  };
}

/**
 * Migration 6: a generation keeps what the upstream engine reported for its image, so that a
 * charge made later (after a crash, or a failed ledger write) records the same upstream cost.
 */
function upstreamCost(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('generations').addColumn('upstream_cost', 'double precision').execute();
    },
  };
}

/**
 * Migration 7: a task keeps the time its `deadlineSeconds` ends (null without one), indexed with
 * its status where it has one, so the sweeper finds queued tasks past their deadline without
 * reading the backlog. Unfinished tasks stored before it get theirs from their request (an
 * upgrade restarts the processes whose timers kept them).
 */
function taskDeadlines(dialect: StoreDialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('tasks').addColumn('deadline_at', TIME).execute();
      const seconds = dialect === 'postgres' ? sql`(request::jsonb ->> 'deadlineSeconds')::bigint` : sql`cast(json_extract(request, '$.deadlineSeconds') as integer)`;
      await sql`update tasks set deadline_at = created_at + ${seconds} * 1000 where status in ('queued', 'running') and ${seconds} is not null`.execute(db);
      // Partial: tasks without a deadline (most) cost the index nothing as they are written.
      await db.schema.createIndex('tasks_deadline').ifNotExists().on('tasks').columns(['status', 'deadline_at']).where('deadline_at', 'is not', null).execute();
    },
  };
}

/** The migrations, by name (kysely runs them in name order). */
export function migrations(dialect: StoreDialect): Record<string, Migration> {
  return {
    '0001_initial': initial(dialect),
    '0002_claims_and_leases': claimsAndLeases(dialect),
    '0003_key_lifecycle': keyLifecycle(),
    '0004_tenancy': tenancy(),
    '0005_delivery_attempts': deliveryAttempts(),
    '0006_upstream_cost': upstreamCost(),
    '0007_task_deadlines': taskDeadlines(dialect),
  };
}

/**
 * Brings the database to the latest schema. On PostgreSQL kysely holds an advisory lock (and a
 * transaction) for the whole run, so processes starting together migrate once; on SQLite the
 * caller holds the write lock (see `openTaskStore`).
 */
export async function migrateToLatest(db: Kysely<any>, dialect: StoreDialect, logger?: Logger): Promise<void> {
  const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations(dialect)) };
  const migrator = new Migrator({ db, provider, migrationTableName: MIGRATION_TABLE, migrationLockTableName: MIGRATION_LOCK_TABLE });
  const { error, results = [] } = await migrator.migrateToLatest();
  for (const result of results) {
    if (result.status === 'Success') logger?.info({ migration: result.migrationName, dialect }, 'task store migrated');
  }
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    const reason = error instanceof Error ? error.message : String(error);
    const which = failed === undefined ? 'task store migration' : `task store migration ${failed}`;
    throw new Error(`${which} failed: ${reason}`, { cause: error });
  }
}
