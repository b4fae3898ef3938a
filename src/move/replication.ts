import type pg from 'pg';
import type { Config } from '../config/types.js';
import { redactText } from '../config/redact.js';
import type { Fleet } from '../fleet/fleet.js';
import { databaseUrl } from '../fleet/connection-url.js';
import { TenantctlError } from '../errors.js';
import { databaseExists } from '../placement/pool/rows.js';
import { ident, literal, qualified } from '../sql.js';
import type { CopyTable } from '../copy/tables.js';
import type { MoveEnd } from './plan.js';
import { drivers } from '../placement/drivers.js';

/**
 * The logical-replication objects of one online move, as its operations row records them BEFORE
 * each is made: a publication and a slot on the source, a subscription at the target, all named
 * `tenantctl_move_<move id>`, so a later command finds and drops them without guessing.
 */
export interface ReplicationRecord {
  name: string;
  source: { shard: string; database: string };
  target: { shard: string; database: string };
  publication?: boolean;
  slot?: boolean;
  subscription?: boolean;
  /** The subscription's oid: its table-sync slots on the source are `pg_<oid>_sync_…`. */
  subOid?: number;
  /** Every object is gone (ISO time). */
  droppedAt?: string;
}

/** The deterministic name of a move's publication, slot and subscription. */
export function replicationName(moveId: number): string {
  return `tenantctl_move_${moveId}`;
}

export function replicationRecordFor(moveId: number, from: MoveEnd, to: MoveEnd): ReplicationRecord {
  return {
    name: replicationName(moveId),
    source: { shard: from.shard, database: from.database },
    target: { shard: to.shard, database: to.database },
  };
}

/**
 * The publication's DDL. Only the tenant-scoped tables are published: shared reference tables are
 * seeded by the migrations at the target too (their rows would collide), and the offline move
 * copies the same set. FOR TABLE rather than FOR TABLES IN SCHEMA for schema and database tenants
 * for the same reason, and because on PostgreSQL 15 only a superuser may publish a whole schema
 * while a table's owner may publish the table.
 *
 * A pool tenant's tables carry a row filter on its key (PostgreSQL 15) and publish inserts,
 * updates and deletes but never TRUNCATE: row filters do not apply to TRUNCATE, which would empty
 * the shared table of every tenant at the target. (Preflight has proved that every table's replica
 * identity covers the key column, which PostgreSQL requires of a row filter for UPDATE and DELETE.)
 */
export function publicationSql(name: string, end: MoveEnd, key: string, tables: CopyTable[], config: Pick<Config, 'tenantKey'>): string {
  const filters = tables.map((t) => drivers[end.model].keyFilter(t.keyColumn, config.tenantKey.type, key));
  const list = tables.map((t, i) => `${qualified(end.schema, t.table)}${filters[i] === null ? '' : ` where (${filters[i]})`}`).join(', ');
  // Filtered rows: never TRUNCATE (it ignores row filters and would empty every tenant's table at the target).
  return `create publication ${ident(name)} for table ${list}${filters.some((f) => f !== null) ? ` with (publish = 'insert, update, delete')` : ''}`;
}

/** On the source: the publication, then the slot (made here, not by CREATE SUBSCRIPTION, see below). */
export async function createSourceSide(
  fleet: Fleet,
  rec: ReplicationRecord,
  ddl: string,
  onRecord: (patch: Partial<ReplicationRecord>) => Promise<void>,
): Promise<void> {
  await onRecord({ publication: true });
  await fleet.withClient(rec.source.shard, rec.source.database, (c) => c.query(ddl));
  // The slot is made before the subscription, and by us: CREATE SUBSCRIPTION creating its own slot
  // hangs when source and target are one cluster (the slot waits for the creating transaction),
  // and a slot we made is one we know to drop. Its consistent point precedes the table copies'.
  await onRecord({ slot: true });
  await fleet.withClient(rec.source.shard, rec.source.database, (c) =>
    c.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [rec.name]),
  );
}

/**
 * At the target: the subscription, copying the published rows first (`copy_data`), then
 * streaming. Its CONNECTION is the source shard's url (password included: PostgreSQL keeps it in
 * pg_subscription, readable by superusers only); the statement is not logged on error
 * (log_min_error_statement) where the role may say so, and errors are redacted.
 */
export async function createSubscription(
  fleet: Fleet,
  rec: ReplicationRecord,
  sourceUrl: string,
  onRecord: (patch: Partial<ReplicationRecord>) => Promise<void>,
): Promise<void> {
  const conninfo = databaseUrl(sourceUrl, rec.source.database);
  await onRecord({ subscription: true });
  const oid = await fleet.withClient(rec.target.shard, rec.target.database, async (c) => {
    await c.query('begin');
    try {
      const su = await c.query<{ s: boolean }>('select rolsuper as s from pg_roles where rolname = current_user');
      if (su.rows[0]?.s) await c.query(`set local log_min_error_statement = panic`);
      await c.query(
        `create subscription ${ident(rec.name)} connection ${literal(conninfo)} publication ${ident(rec.name)}
           with (create_slot = false, slot_name = ${literal(rec.name)}, copy_data = true, enabled = true)`,
      );
      const r = await c.query<{ oid: number }>(
        'select oid::int as oid from pg_subscription where subname = $1 and subdbid = (select oid from pg_database where datname = current_database())',
        [rec.name],
      );
      await c.query('commit');
      return r.rows[0]?.oid;
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw new TenantctlError(
        'MOVE_FAILED',
        `creating the subscription at ${rec.target.shard}/${rec.target.database} failed: ${redactText((err as Error).message)}`,
        'the target cluster must reach the source at the host and port of its shard url',
      );
    }
  });
  await onRecord({ subOid: oid });
}

export interface SyncState {
  tables: number;
  ready: number;
  errors: number;
}

/** The subscription's tables and how many are ready ('r'), with its error counts (PostgreSQL 15+). */
export async function syncState(fleet: Fleet, rec: ReplicationRecord): Promise<SyncState> {
  return fleet.withClient(rec.target.shard, rec.target.database, async (c) => {
    const { rows } = await c.query<SyncState>(
      `select count(*)::int as tables, (count(*) filter (where r.srsubstate = 'r'))::int as ready,
              coalesce((select (apply_error_count + sync_error_count)::int from pg_stat_subscription_stats where subname = $1), 0) as errors
         from pg_subscription s join pg_subscription_rel r on r.srsubid = s.oid
        where s.subname = $1 and s.subdbid = (select oid from pg_database where datname = current_database())`,
      [rec.name],
    );
    return rows[0];
  });
}

/** Wait until every published table is copied and streaming ('r'); fail on a replication error. */
export async function waitForSync(
  fleet: Fleet,
  rec: ReplicationRecord,
  timeoutMs: number,
  onState?: (s: SyncState) => void,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await syncState(fleet, rec);
    onState?.(s);
    if (s.errors > 0) throw replicationError(rec, 'copying the rows');
    if (s.tables > 0 && s.ready === s.tables) return;
    if (Date.now() > end) {
      throw new TenantctlError(
        'MOVE_FAILED',
        `the initial copy at ${rec.target.shard}/${rec.target.database} did not finish within ${Math.round(timeoutMs / 1000)} s (${s.ready} of ${s.tables} tables ready)`,
        "check max_logical_replication_workers and max_sync_workers_per_subscription at the target and the target's server log",
      );
    }
    await sleep(100);
  }
}

/**
 * Flush every WAL record written so far, asynchronous commits included: under synchronous_commit
 * = off a commit is visible before its WAL is flushed, and neither a walsender nor a slot's
 * decoding reads past the flushed position. A commit of our own flushes all WAL before it only if
 * it wrote WAL itself (an xid alone writes none): a temporary table made and dropped in it (no
 * privilege beyond TEMPORARY, which tenantctl has on the databases it made; pg_logical_emit_message
 * is not granted to PUBLIC).
 */
export async function flushWal(c: Pick<pg.ClientBase, 'query'>): Promise<void> {
  await c
    .query('begin; set local synchronous_commit = on; create temporary table tenantctl_wal_flush () on commit drop; commit')
    .catch(async (err) => {
      await c.query('rollback').catch(() => undefined);
      throw err;
    });
}

/** The source's WAL position after everything committed so far, flushed (flushWal), so the walsender can send up to it. */
export async function sourcePosition(fleet: Fleet, rec: ReplicationRecord): Promise<string> {
  return fleet.withClient(rec.source.shard, rec.source.database, async (c) => {
    await flushWal(c);
    const r = await c.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    return r.rows[0].lsn;
  });
}

/**
 * Wait until the subscription has applied and flushed the source's WAL up to `lsn`, as the
 * walsender of its slot reports (pg_stat_replication.replay_lsn, or the slot's confirmed flush).
 */
export async function waitForCatchUp(fleet: Fleet, rec: ReplicationRecord, lsn: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const done = await fleet.withClient(rec.source.shard, rec.source.database, async (c) => {
      const r = await c.query<{ ok: boolean | null }>(
        `select greatest(r.replay_lsn, s.confirmed_flush_lsn) >= $2::pg_lsn as ok
           from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid
          where s.slot_name = $1`,
        [rec.name, lsn],
      );
      return r.rows[0]?.ok === true;
    });
    if (done) return;
    const s = await syncState(fleet, rec);
    if (s.errors > 0) throw replicationError(rec, 'streaming the changes');
    if (Date.now() > end) {
      throw new TenantctlError(
        'MOVE_FAILED',
        `the target did not catch up with the source (WAL ${lsn}) within ${Math.round(timeoutMs / 1000)} s`,
        "see the target's server log (logical replication worker); try again at a quieter time",
      );
    }
    await sleep(20);
  }
}

/**
 * Stop the subscription and wait for its worker to exit: after this nothing more is applied at
 * the target, while dropping
 * it, which also drops the slot on the source, can wait until writes flow again.
 */
export async function stopSubscription(fleet: Fleet, rec: ReplicationRecord): Promise<void> {
  await fleet.withClient(rec.target.shard, rec.target.database, async (c) => {
    await c.query(`alter subscription ${ident(rec.name)} disable`);
    const end = Date.now() + 10_000;
    for (;;) {
      // An idle worker notices the change only at its next wake-up (up to a second): ended at
      // once instead. Safe: everything the tenant committed has been applied and flushed, and a
      // disabled subscription's worker is not restarted.
      const r = await c.query('select pg_terminate_backend(pid) from pg_stat_subscription where subname = $1 and pid is not null', [
        rec.name,
      ]);
      if (!r.rowCount) return;
      if (Date.now() > end) throw new TenantctlError('MOVE_FAILED', `the subscription ${rec.name} did not stop within 10 s`);
      await sleep(10);
    }
  });
}

function replicationError(rec: ReplicationRecord, doing: string): TenantctlError {
  return new TenantctlError(
    'MOVE_FAILED',
    `logical replication failed at ${rec.target.shard}/${rec.target.database} while ${doing} (pg_stat_subscription_stats counts errors for ${rec.name})`,
    "see the target's server log for the logical replication worker's error (a row already at the target, a missing column)",
  );
}

/**
 * Drop every object of the record that may exist, target first (the subscription holds the slot):
 * DROP SUBSCRIPTION also drops the slot on the source; when the source cannot be reached, the
 * subscription is disabled, detached from its slot (slot_name = NONE) and dropped, and the slot is
 * dropped on the source once it answers. Then the source's slots (its own and the table copies')
 * and the publication. Idempotent. Returns what it dropped; throws naming what is left.
 */
export async function dropReplication(fleet: Fleet, rec: ReplicationRecord): Promise<string[]> {
  const done: string[] = [];
  const left: string[] = [];
  const where = (e: { shard: string; database: string }) => `${e.shard}/${e.database}`;
  if (rec.subscription) {
    try {
      if (await dropSubscription(fleet, rec)) done.push(`dropped the subscription ${rec.name} at ${where(rec.target)}`);
    } catch (err) {
      left.push(`the subscription ${rec.name} at ${where(rec.target)} (${(err as Error).message})`);
    }
  }
  if (rec.slot || rec.subscription) {
    try {
      const n = await dropSlots(fleet, rec);
      if (n) done.push(`dropped ${n} replication slot${n > 1 ? 's' : ''} ${rec.name} on ${rec.source.shard}`);
    } catch (err) {
      left.push(`the replication slot ${rec.name} on ${rec.source.shard} (${(err as Error).message})`);
    }
  }
  if (rec.publication) {
    try {
      if (await databaseExists(fleet, rec.source.shard, rec.source.database)) {
        const r = await fleet.withClient(rec.source.shard, rec.source.database, async (c) => {
          const had = await c.query('select 1 from pg_publication where pubname = $1', [rec.name]);
          await c.query(`drop publication if exists ${ident(rec.name)}`);
          return had.rowCount;
        });
        if (r) done.push(`dropped the publication ${rec.name} at ${where(rec.source)}`);
      }
    } catch (err) {
      left.push(`the publication ${rec.name} at ${where(rec.source)} (${(err as Error).message})`);
    }
  }
  if (left.length) {
    throw new TenantctlError(
      'MOVE_FAILED',
      redactText(`logical replication objects of the move are left: ${left.join('; ')}`),
      'run the same move again, or tenantctl move rollback <slug>, when both shards answer: it drops them',
    );
  }
  return done;
}

async function dropSubscription(fleet: Fleet, rec: ReplicationRecord): Promise<boolean> {
  if (!(await databaseExists(fleet, rec.target.shard, rec.target.database))) return false;
  return fleet.withClient(rec.target.shard, rec.target.database, async (c) => {
    const here = 'subdbid = (select oid from pg_database where datname = current_database())';
    const has = await c.query(`select 1 from pg_subscription where subname = $1 and ${here}`, [rec.name]);
    if (!has.rowCount) return false;
    try {
      // Stops its workers and drops the slot (and any table-copy slot) on the source.
      await c.query(`drop subscription if exists ${ident(rec.name)}`);
    } catch {
      // The source does not answer (or its slot cannot be dropped): keep the slot for later.
      await c.query(`alter subscription ${ident(rec.name)} disable`);
      await c.query(`alter subscription ${ident(rec.name)} set (slot_name = none)`);
      await c.query(`drop subscription if exists ${ident(rec.name)}`);
    }
    return true;
  });
}

/** The move's slot and its table-copy slots on the source; an active one's walsender is ended first. */
async function dropSlots(fleet: Fleet, rec: ReplicationRecord): Promise<number> {
  return fleet.withClient(rec.source.shard, rec.source.database, async (c) => {
    const pattern = rec.subOid ? `pg\\_${rec.subOid}\\_sync\\_%` : null;
    const find = () =>
      c.query<{ slot: string; pid: number | null }>(
        `select slot_name as slot, active_pid as pid from pg_replication_slots
          where slot_name = $1 or ($2::text is not null and slot_name like $2)`,
        [rec.name, pattern],
      );
    let dropped = 0;
    for (let attempt = 0; attempt < 50; attempt++) {
      const { rows } = await find();
      if (rows.length === 0) return dropped;
      for (const s of rows) {
        if (s.pid) {
          // A walsender of a subscription that is gone (or of the killed move's) still holds it.
          await c.query('select pg_terminate_backend($1)', [s.pid]).catch(() => undefined);
          continue;
        }
        try {
          await c.query('select pg_drop_replication_slot($1)', [s.slot]);
          dropped++;
        } catch (err) {
          if ((err as { code?: string }).code !== '55006' && (err as { code?: string }).code !== '42704') throw err;
        }
      }
      await sleep(100);
    }
    throw new Error('the slot stayed in use for 5 s');
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
