import { sql, SqliteAdapter, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { GenerationsTable, TasksTable } from './schema.ts';
import {
  periodStart,
  type BudgetPeriod,
  type HoldOutcome,
  type HoldRequest,
  type KeyAccount,
  type KeyLimits,
  type KeyLoad,
  type LedgerEntry,
  type TenancyStore,
  type UsageQuery,
} from './tenancy-store.ts';

/** The columns migration 0004 added (kept apart from `StoreSchema`, which the task store owns). */
interface TenancyKeysTable {
  id: string;
  revoked_at: number | null;
  max_concurrent_images: number | null;
  max_queued_images: number | null;
  rate_per_second: number | null;
  fair_weight: number | null;
  budget_micros: number | null;
  budget_period: string | null;
  budget_spent_micros: number;
  budget_reserved_micros: number;
  budget_period_start: number;
  usage_images: number;
  usage_micros: number;
}
interface KeyHoldsTable {
  task_uuid: string;
  api_key_id: string;
  images: number;
  unit_micros: number;
  held_micros: number;
  started: number;
  created_at: number;
}
interface UsageLedgerTable {
  task_uuid: string;
  image_index: number;
  api_key_id: string;
  image_uuid: string;
  model: string;
  engine: string;
  width: number;
  height: number;
  price_micros: number;
  upstream_micros: number | null;
  created_at: number;
}
interface TenancySchema {
  api_keys: TenancyKeysTable;
  key_holds: KeyHoldsTable;
  usage_ledger: UsageLedgerTable;
  /** Read only here (per-key loads); owned by the task store. */
  tasks: Pick<TasksTable, 'task_uuid' | 'api_key_id' | 'status' | 'image_count' | 'created_at'>;
  generations: Pick<GenerationsTable, 'task_uuid' | 'status'>;
}
type Db = Kysely<TenancySchema> | Transaction<TenancySchema>;

const PERIODS: ReadonlySet<string> = new Set(['day', 'month', 'total']);
const num = (value: unknown): number => Number(value ?? 0);
const numOrNull = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));

function toAccount(r: Selectable<TenancyKeysTable>): KeyAccount {
  return {
    apiKeyId: r.id,
    maxConcurrentImages: numOrNull(r.max_concurrent_images),
    maxQueuedImages: numOrNull(r.max_queued_images),
    rate: numOrNull(r.rate_per_second),
    weight: numOrNull(r.fair_weight),
    budgetMicros: numOrNull(r.budget_micros),
    budgetPeriod: r.budget_period !== null && PERIODS.has(r.budget_period) ? (r.budget_period as BudgetPeriod) : null,
    spentMicros: num(r.budget_spent_micros),
    reservedMicros: num(r.budget_reserved_micros),
    periodStart: num(r.budget_period_start),
    usageImages: num(r.usage_images),
    usageMicros: num(r.usage_micros),
  };
}

const toEntry = (r: Selectable<UsageLedgerTable>): LedgerEntry => ({
  apiKeyId: r.api_key_id,
  taskUUID: r.task_uuid,
  imageIndex: num(r.image_index),
  imageUUID: r.image_uuid,
  model: r.model,
  engine: r.engine,
  width: num(r.width),
  height: num(r.height),
  priceMicros: num(r.price_micros),
  upstreamMicros: numOrNull(r.upstream_micros),
  at: num(r.created_at),
});

/**
 * The key's counters after charging `entry`, `released` micro-dollars coming off its reservation.
 * The key's current period start is chosen in the statement by its budget period (one round
 * trip instead of a read and a write); 'total' and no period both start at 0. (Typed:
 * PostgreSQL cannot infer a parameter's type inside a CASE.)
 */
function spend(entry: LedgerEntry, released: number) {
  const start = sql<number>`(case budget_period when 'day' then cast(${periodStart('day', entry.at)} as bigint) when 'month' then cast(${periodStart('month', entry.at)} as bigint) else 0 end)`;
  return {
    // A charge that lands after its period ended (it was made before midnight) counts in the
    // current one: the period never moves backwards, so a late charge cannot wipe it.
    budget_spent_micros: sql<number>`(case when budget_period_start >= ${start} then budget_spent_micros else 0 end) + ${entry.priceMicros}`,
    budget_period_start: sql<number>`case when budget_period_start > ${start} then budget_period_start else ${start} end`,
    budget_reserved_micros: sql<number>`budget_reserved_micros - ${released}`,
    usage_images: sql<number>`usage_images + 1`,
    usage_micros: sql<number>`usage_micros + ${entry.priceMicros}`,
  };
}

/**
 * `TenancyStore` on the task store's database (SQLite or PostgreSQL), every statement written
 * once for both. Each change starts by writing the row it depends on (the key's row for a
 * hold, the hold's row for a charge, refund or release): on PostgreSQL that row lock orders
 * concurrent transactions and later reads in the same transaction see what the previous one
 * committed; on SQLite it takes the write lock before anything is read.
 */
export class KyselyTenancyStore implements TenancyStore {
  private readonly db: Kysely<TenancySchema>;
  private readonly sqlite: boolean;

  constructor(
    db: Kysely<any>,
    /** The time a budget change reads its period at (ms since epoch). */
    private readonly now: () => number = Date.now,
  ) {
    this.db = db as Kysely<TenancySchema>;
    this.sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  }

  async account(apiKeyId: string): Promise<KeyAccount | undefined> {
    const r = await this.db.selectFrom('api_keys').selectAll().where('id', '=', apiKeyId).executeTakeFirst();
    return r && toAccount(r);
  }

  async setLimits(apiKeyId: string, patch: Partial<KeyLimits>): Promise<boolean> {
    const set: Partial<TenancyKeysTable> = {};
    if (patch.maxConcurrentImages !== undefined) set.max_concurrent_images = patch.maxConcurrentImages;
    if (patch.maxQueuedImages !== undefined) set.max_queued_images = patch.maxQueuedImages;
    if (patch.rate !== undefined) set.rate_per_second = patch.rate;
    if (patch.weight !== undefined) set.fair_weight = patch.weight;
    if (patch.budgetMicros !== undefined) set.budget_micros = patch.budgetMicros;
    if (patch.budgetPeriod !== undefined) set.budget_period = patch.budgetPeriod;
    if (Object.keys(set).length === 0) return (await this.account(apiKeyId)) !== undefined;
    return this.db.transaction().execute(async (trx) => {
      const result = await trx.updateTable('api_keys').set(set).where('id', '=', apiKeyId).executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) return false;
      if (patch.budgetMicros !== undefined || patch.budgetPeriod !== undefined) {
        // A budget set (or re-periodised) mid-period starts from what the key already spent in
        // that period, read from the ledger, not from zero.
        const row = await trx.selectFrom('api_keys').select('budget_period').where('id', '=', apiKeyId).executeTakeFirstOrThrow();
        const period = row.budget_period != null && PERIODS.has(row.budget_period) ? (row.budget_period as BudgetPeriod) : null;
        const start = periodStart(period, this.now());
        const spent = await trx
          .selectFrom('usage_ledger')
          .select((eb) => eb.fn.sum<number>('price_micros').as('n'))
          .where('api_key_id', '=', apiKeyId)
          .where('created_at', '>=', start)
          .executeTakeFirst();
        await trx.updateTable('api_keys').set({ budget_spent_micros: num(spent?.n), budget_period_start: start }).where('id', '=', apiKeyId).execute();
      }
      return true;
    });
  }

  hold(request: HoldRequest): Promise<HoldOutcome> {
    return this.db.transaction().execute(async (trx): Promise<HoldOutcome> => {
      // The key's row first: holds of one key are serialised from here on.
      const locked = await trx
        .updateTable('api_keys')
        .set({ budget_reserved_micros: sql<number>`budget_reserved_micros` })
        .where('id', '=', request.apiKeyId)
        .executeTakeFirst();
      if (Number(locked.numUpdatedRows) === 0) return { ok: true, account: undefined, made: false };
      const existing = await trx
        .selectFrom('key_holds')
        .select(['api_key_id', 'images', 'unit_micros'])
        .where('task_uuid', '=', request.taskUUID)
        .executeTakeFirst();
      const row = await trx.selectFrom('api_keys').selectAll().where('id', '=', request.apiKeyId).executeTakeFirstOrThrow();
      const account = toAccount(row);
      if (existing) {
        // The same task submitted twice at once holds once; anything else under its taskUUID
        // (another key, more images, another price) is a conflict, never a free ride on its hold.
        const same = existing.api_key_id === request.apiKeyId && num(existing.images) === request.images && num(existing.unit_micros) === request.unitMicros;
        return same ? { ok: true, account, made: false } : { ok: false, reason: 'taskUUID' };
      }
      // The ledger keys charges by taskUUID: one whose images were charged (its task since
      // purged) is never reused, or its images would come free.
      const charged = await trx.selectFrom('usage_ledger').select('task_uuid').where('task_uuid', '=', request.taskUUID).limit(1).executeTakeFirst();
      if (charged) return { ok: false, reason: 'charged' };
      const loads = await trx
        .selectFrom('key_holds')
        .select((eb) => ['started', eb.fn.sum<number>('images').as('n')])
        .where('api_key_id', '=', request.apiKeyId)
        .groupBy('started')
        .execute();
      const queued = num(loads.find((l) => num(l.started) === 0)?.n);
      const running = num(loads.find((l) => num(l.started) === 1)?.n);
      const maxConcurrent = account.maxConcurrentImages ?? request.defaults.maxConcurrentImages;
      if (maxConcurrent !== null && queued + running + request.images > maxConcurrent) return { ok: false, reason: 'concurrentImages', limit: maxConcurrent };
      const maxQueued = account.maxQueuedImages ?? request.defaults.maxQueuedImages;
      if (maxQueued !== null && queued + request.images > maxQueued) return { ok: false, reason: 'queuedImages', limit: maxQueued };
      const amount = request.images * request.unitMicros;
      // The period never moves backwards (a process whose clock is behind, a late charge).
      const start = Math.max(account.periodStart, periodStart(account.budgetPeriod, request.now));
      const spent = account.periodStart === start ? account.spentMicros : 0;
      if (account.budgetMicros !== null && spent + account.reservedMicros + amount > account.budgetMicros) {
        return { ok: false, reason: 'budget', remainingMicros: Math.max(0, account.budgetMicros - spent - account.reservedMicros), budgetMicros: account.budgetMicros };
      }
      // The hold first: another key holding the same taskUUID meanwhile (its own row lock does not
      // cover ours) makes this a conflict, with nothing written.
      const inserted = await trx
        .insertInto('key_holds')
        .values({
          task_uuid: request.taskUUID,
          api_key_id: request.apiKeyId,
          images: request.images,
          unit_micros: request.unitMicros,
          held_micros: amount,
          started: 0,
          created_at: request.now,
        })
        .onConflict((oc) => oc.column('task_uuid').doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return { ok: false, reason: 'taskUUID' };
      await trx
        .updateTable('api_keys')
        .set({ budget_reserved_micros: sql<number>`budget_reserved_micros + ${amount}`, budget_spent_micros: spent, budget_period_start: start })
        .where('id', '=', request.apiKeyId)
        .execute();
      return { ok: true, account: { ...account, spentMicros: spent, periodStart: start, reservedMicros: account.reservedMicros + amount }, made: true };
    });
  }

  async markStarted(taskUUID: string): Promise<void> {
    await this.db.updateTable('key_holds').set({ started: 1 }).where('task_uuid', '=', taskUUID).execute();
  }

  async markQueued(taskUUID: string): Promise<void> {
    // Only while the task is still queued: a run that claimed it meanwhile has marked it started.
    await this.db
      .updateTable('key_holds')
      .set({ started: 0 })
      .where('task_uuid', '=', taskUUID)
      .where(({ exists, selectFrom }) => exists(selectFrom('tasks').select('tasks.task_uuid').where('tasks.task_uuid', '=', taskUUID).where('tasks.status', '=', 'queued')))
      .execute();
  }

  async charge(entry: LedgerEntry, options: { readonly held?: boolean } = {}): Promise<boolean> {
    const row = {
      task_uuid: entry.taskUUID,
      image_index: entry.imageIndex,
      api_key_id: entry.apiKeyId,
      image_uuid: entry.imageUUID,
      model: entry.model,
      engine: entry.engine,
      width: entry.width,
      height: entry.height,
      price_micros: entry.priceMicros,
      upstream_micros: entry.upstreamMicros,
      created_at: entry.at,
    };
    if (options.held === false && !this.sqlite) {
      // Nothing held, so nothing to take from a hold: on PostgreSQL the ledger row and the key's
      // counters are one statement (a data-modifying WITH; the key is counted only when the row
      // was new), one round trip instead of five. SQLite has no such WITH, and its transaction
      // costs no round trips.
      const charged = await this.db
        .with('charged', (db) =>
          db
            .insertInto('usage_ledger')
            .values(row)
            .onConflict((oc) => oc.columns(['task_uuid', 'image_index']).doNothing())
            .returning('task_uuid'),
        )
        .with('counted', (db) =>
          db
            .updateTable('api_keys')
            .set(spend(entry, 0))
            .where('id', '=', entry.apiKeyId)
            .where(({ exists, selectFrom }) => exists(selectFrom('charged').select('charged.task_uuid')))
            .returning('id'),
        )
        .selectFrom('charged')
        .select('charged.task_uuid')
        .execute();
      return charged.length > 0;
    }
    return this.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('usage_ledger')
        .values(row)
        .onConflict((oc) => oc.columns(['task_uuid', 'image_index']).doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return false;
      const released = options.held === false ? 0 : await this.takeFromHold(trx, entry.taskUUID, 1);
      await trx.updateTable('api_keys').set(spend(entry, released)).where('id', '=', entry.apiKeyId).execute();
      return true;
    });
  }

  async refund(taskUUID: string, images: number): Promise<void> {
    if (images <= 0) return;
    await this.db.transaction().execute(async (trx) => {
      const hold = await trx.selectFrom('key_holds').select('api_key_id').where('task_uuid', '=', taskUUID).executeTakeFirst();
      const released = await this.takeFromHold(trx, taskUUID, images);
      if (hold && released > 0) {
        await trx
          .updateTable('api_keys')
          .set({ budget_reserved_micros: sql<number>`budget_reserved_micros - ${released}` })
          .where('id', '=', hold.api_key_id)
          .execute();
      }
    });
  }

  async release(taskUUID: string, options: { unlessStored?: boolean } = {}): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      if (options.unlessStored) {
        // The hold's row is locked first, then the tasks are read in a statement of their own (a
        // fresh snapshot on PostgreSQL): a twin that stored the task before the lock is seen, and
        // one storing it after finds the hold gone (`isHeld` waits for this transaction).
        const hold = await trx.selectFrom('key_holds').select('task_uuid').where('task_uuid', '=', taskUUID).$if(!this.sqlite, (q) => q.forUpdate()).executeTakeFirst();
        if (!hold) return;
        const live = await trx.selectFrom('tasks').select('task_uuid').where('task_uuid', '=', taskUUID).where('status', 'in', ['queued', 'running']).executeTakeFirst();
        if (live) return;
      }
      const gone = await trx.deleteFrom('key_holds').where('task_uuid', '=', taskUUID).returning(['api_key_id', 'held_micros']).executeTakeFirst();
      if (!gone || num(gone.held_micros) === 0) return;
      await trx
        .updateTable('api_keys')
        .set({ budget_reserved_micros: sql<number>`budget_reserved_micros - ${num(gone.held_micros)}` })
        .where('id', '=', gone.api_key_id)
        .execute();
    });
  }

  async isHeld(taskUUID: string): Promise<boolean> {
    // FOR SHARE on PostgreSQL: a release in flight (its row locked) is waited for, not read past.
    const row = await this.db.selectFrom('key_holds').select('task_uuid').where('task_uuid', '=', taskUUID).$if(!this.sqlite, (q) => q.forShare()).executeTakeFirst();
    return row !== undefined;
  }

  async holdsOlderThan(before: number): Promise<string[]> {
    const rows = await this.db.selectFrom('key_holds').select('task_uuid').where('created_at', '<', before).execute();
    return rows.map((r) => r.task_uuid);
  }

  async loadByKey(): Promise<KeyLoad[]> {
    // The images still to make of unfinished tasks: the tasks through tasks_status, then each
    // one's pending generations by primary key (a correlated count, so neither database is
    // tempted into scanning all generations): a running 20-image task with 19 done counts one.
    const perTask = this.db
      .selectFrom('tasks')
      .select((eb) => [
        'tasks.api_key_id as api_key_id',
        'tasks.status as status',
        eb
          .selectFrom('generations')
          .select((inner) => inner.fn.countAll<number>().as('c'))
          .whereRef('generations.task_uuid', '=', 'tasks.task_uuid')
          .where('generations.status', '=', 'pending')
          .as('pending'),
      ])
      .where('tasks.status', 'in', ['queued', 'running'])
      .as('t');
    const rows = await this.db
      .selectFrom(perTask)
      .select((eb) => ['t.api_key_id as api_key_id', 't.status as status', eb.fn.sum<number>('t.pending').as('n')])
      .groupBy(['t.api_key_id', 't.status'])
      .execute();
    const byKey = new Map<string, { queuedImages: number; runningImages: number }>();
    for (const row of rows) {
      const load = byKey.get(row.api_key_id) ?? { queuedImages: 0, runningImages: 0 };
      if (row.status === 'running') load.runningImages += num(row.n);
      else load.queuedImages += num(row.n);
      byKey.set(row.api_key_id, load);
    }
    return [...byKey].map(([apiKeyId, load]) => ({ apiKeyId, ...load }));
  }

  async wasCharged(taskUUID: string): Promise<boolean> {
    const row = await this.db.selectFrom('usage_ledger').select('task_uuid').where('task_uuid', '=', taskUUID).limit(1).executeTakeFirst();
    return row !== undefined;
  }

  async usage(query: UsageQuery): Promise<LedgerEntry[]> {
    let select = this.ledger(query).selectAll().orderBy('created_at').orderBy('task_uuid').orderBy('image_index');
    if (query.limit !== undefined) select = select.limit(query.limit);
    return (await select.execute()).map(toEntry);
  }

  async usageTotals(query: UsageQuery): Promise<{ images: number; micros: number }> {
    const row = await this.ledger(query)
      .select((eb) => [eb.fn.countAll<number>().as('images'), eb.fn.sum<number>('price_micros').as('micros')])
      .executeTakeFirst();
    return { images: num(row?.images), micros: num(row?.micros) };
  }

  /** Ledger rows in a time range, of one key or all (through usage_ledger_key_time or usage_ledger_time). */
  private ledger(query: UsageQuery) {
    let select = this.db.selectFrom('usage_ledger').where('created_at', '>=', query.since ?? 0);
    if (query.until !== undefined) select = select.where('created_at', '<', query.until);
    if (query.apiKeyId !== undefined) select = select.where('api_key_id', '=', query.apiKeyId);
    return select;
  }

  /** Takes up to `images` unit prices off a hold (never below zero); answers the micro-dollars taken. */
  private async takeFromHold(trx: Db, taskUUID: string, images: number): Promise<number> {
    // The write comes first (the row lock), then the read sees the latest committed hold.
    const locked = await trx.updateTable('key_holds').set({ held_micros: sql<number>`held_micros` }).where('task_uuid', '=', taskUUID).executeTakeFirst();
    if (Number(locked.numUpdatedRows) === 0) return 0;
    const hold = await trx.selectFrom('key_holds').select(['held_micros', 'unit_micros', 'images']).where('task_uuid', '=', taskUUID).executeTakeFirstOrThrow();
    const taken = Math.min(num(hold.held_micros), images * num(hold.unit_micros));
    await trx
      .updateTable('key_holds')
      .set({ held_micros: num(hold.held_micros) - taken, images: Math.max(0, num(hold.images) - images) })
      .where('task_uuid', '=', taskUUID)
      .execute();
    return taken;
  }
}
