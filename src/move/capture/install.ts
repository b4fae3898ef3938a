import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import type { Fleet } from '../../fleet/fleet.js';
import { TenantctlError } from '../../errors.js';
import { ident, literal, qualified } from '../../sql.js';
import type { CopyTable } from '../../copy/tables.js';
import type { MoveEnd } from '../plan.js';
import { drivers } from '../../placement/drivers.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** The schema of the change tables and capture functions in a source database: tenantctl's, no one else's. */
export const CAPTURE_SCHEMA = 'tenantctl_capture';

/**
 * The trigger capture of one online move (`move --online` where the role may not create
 * subscriptions), as its operations row records it BEFORE anything is made: at the source, a
 * change table `tenantctl_capture.changes_<move id>`, a function `capture_<move id>` and, on each
 * tenant-scoped table, triggers `tenantctl_capture_<move id>_{i,u,d,t}`; so a later command
 * removes them without guessing (remove.ts).
 */
export interface CaptureRecord {
  id: number;
  shard: string;
  database: string;
  schema: string;
  /** The tables that may carry the triggers. */
  tables: string[];
  /** Every object is gone (ISO time). */
  removedAt?: string;
}

export function captureRecordFor(moveId: number, from: MoveEnd, tables: CopyTable[]): CaptureRecord {
  return { id: moveId, shard: from.shard, database: from.database, schema: from.schema, tables: tables.map((t) => t.table) };
}

export const changeTable = (id: number) => qualified(CAPTURE_SCHEMA, `changes_${id}`);
export const captureFunction = (id: number) => qualified(CAPTURE_SCHEMA, `capture_${id}`);
export const triggerName = (id: number, op: 'i' | 'u' | 'd' | 't') => `tenantctl_capture_${id}_${op}`;

/** How long one attempt to add or drop a table's triggers may wait for the table's lock, and how often it is tried. */
export const TRIGGER_LOCK_MS = 1000;
export const TRIGGER_ATTEMPTS = 20;

/**
 * Install the capture at the source: the change table and function first, then each table's
 * triggers, one table per transaction. CREATE TRIGGER waits for the table's in-flight writes
 * (SHARE ROW EXCLUSIVE), so once every table's triggers have committed, each write that went
 * uncaptured has ended, and a snapshot taken afterwards holds it: capture starts before the
 * snapshot. On a pool's shared tables the triggers fire only for the tenant's rows: their WHEN
 * clause compares the key column with the tenant's key before any function is called, so other
 * tenants' writes pay one comparison. The function is SECURITY DEFINER (it writes the change
 * table as tenantctl, whoever wrote the row) and nobody else may execute it, read the change
 * table or use its schema. Each table's lock is waited for at most TRIGGER_LOCK_MS at a time, with
 * jittered retries, so the pool's other tenants never queue behind it for long.
 */
export async function installCapture(
  fleet: Fleet,
  rec: CaptureRecord,
  model: MoveEnd['model'],
  key: string,
  tables: CopyTable[],
  config: Pick<Config, 'tenantKey'>,
): Promise<void> {
  const driver = drivers[model];
  await fleet.withTransaction(rec.shard, rec.database, async (c) => {
    await c.query(`create schema if not exists ${ident(CAPTURE_SCHEMA)}`);
    await c.query(`revoke all on schema ${ident(CAPTURE_SCHEMA)} from public`);
    await c.query(
      `create table if not exists ${changeTable(rec.id)} (
         id bigserial primary key,
         txid xid8 not null default pg_current_xact_id(),
         tbl text not null,
         op "char" not null,
         old jsonb,
         new jsonb)`,
    );
    await c.query(`create index if not exists ${ident(`changes_${rec.id}_txid`)} on ${changeTable(rec.id)} (txid)`);
    await c.query(`revoke all on ${changeTable(rec.id)} from public`);
    await c.query(captureFunctionSql(rec.id));
    await c.query(`revoke all on function ${captureFunction(rec.id)}() from public`);
  });
  for (const t of tables) {
    const target = qualified(rec.schema, t.table);
    // Shared tables: only the tenant's rows fire (its key filter on the row images); a placement of its own: every row.
    const is = (row: 'new' | 'old') => driver.keyFilter(t.keyColumn, config.tenantKey.type, key, row);
    const when = (...w: (string | null)[]) => (w.every((x) => x !== null) ? ` when (${w.join(' or ')})` : '');
    const fn = `${captureFunction(rec.id)}(${literal(t.table)})`;
    const ddl = [
      `create trigger ${ident(triggerName(rec.id, 'i'))} after insert on ${target} for each row${when(is('new'))} execute function ${fn}`,
      `create trigger ${ident(triggerName(rec.id, 'u'))} after update on ${target} for each row${when(is('old'), is('new'))} execute function ${fn}`,
      `create trigger ${ident(triggerName(rec.id, 'd'))} after delete on ${target} for each row${when(is('old'))} execute function ${fn}`,
      `create trigger ${ident(triggerName(rec.id, 't'))} after truncate on ${target} for each statement execute function ${fn}`,
    ];
    await withTableLock(fleet, rec, t.table, 'capturing the tenant changes of', async (c) => {
      for (const d of ddl) await c.query(d);
    });
  }
}

function captureFunctionSql(id: number): string {
  const into = `insert into ${changeTable(id)} (tbl, op, old, new)`;
  return `create or replace function ${captureFunction(id)}() returns trigger
    language plpgsql security definer set search_path = pg_catalog, pg_temp as $fn$
  begin
    if tg_op = 'INSERT' then ${into} values (tg_argv[0], 'I', null, to_jsonb(new));
    elsif tg_op = 'UPDATE' then ${into} values (tg_argv[0], 'U', to_jsonb(old), to_jsonb(new));
    elsif tg_op = 'DELETE' then ${into} values (tg_argv[0], 'D', to_jsonb(old), null);
    else ${into} values (tg_argv[0], 'T', null, null);
    end if;
    return null;
  end $fn$`;
}

/**
 * Run DDL on one table in its own transaction, waiting for the table's lock at most
 * TRIGGER_LOCK_MS per attempt (a lock_not_available error is retried after a jittered pause).
 */
export async function withTableLock(
  fleet: Fleet,
  rec: Pick<CaptureRecord, 'shard' | 'database' | 'schema'>,
  table: string,
  doing: string,
  fn: (c: Q) => Promise<void>,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fleet.withTransaction(rec.shard, rec.database, async (c) => {
        await c.query(`set local lock_timeout = ${TRIGGER_LOCK_MS}`);
        await fn(c);
      });
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03' || attempt >= TRIGGER_ATTEMPTS) {
        throw new TenantctlError(
          'MOVE_FAILED',
          `${doing} ${rec.schema}.${table} at ${rec.shard}/${rec.database} failed${attempt > 1 ? ` after ${attempt} attempts` : ''}: ${(err as Error).message}`,
          'a long transaction holds the table: try again when it has ended',
        );
      }
      await sleep(100 + Math.floor(Math.random() * 400));
    }
  }
}
