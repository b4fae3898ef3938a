/**
 * What a pool's REPEATABLE READ and SERIALIZABLE transactions cannot see: a fence written after
 * their snapshot (a switch, a deleted key's fence, a suspension). Such a transaction reads the
 * fence's table with its transaction's snapshot whatever the check function's volatility, so one
 * that began (and only read) before the change would write, or read, past it.
 *
 * Each kind of change keeps two sequences in the fence's schema (`setval` is not transactional,
 * so every snapshot reads them current): `<kind>_xid`, the transaction id of the latest change
 * (set inside it, so in progress until it commits, and left behind by one that aborted), and
 * `<kind>_done`, the latest before it that committed. Changes of one kind in one pool are
 * serialised (a lock held to commit), so a snapshot that sees the latest committed change sees
 * every earlier one. The check refuses with 40001 (a serialization failure, which
 * such transactions retry) when either committed unseen by the snapshot; the retry's snapshot
 * sees the fence. A change still in progress needs no refusal: until it commits its own lock
 * refuses the tenant's writes (a move's write fence) or its table row is what is being written.
 * A neighbour's transaction spanning the change is asked to retry once, too: the sequences say
 * that a change happened, not whose.
 *
 * @example
 *   await ensureEpoch(c, 'tenantctl_fence', 'switch');      // made once per pool
 *   await recordEpoch(c, 'tenantctl_fence', 'switch', 'tenantctl_fence.switched'); // inside the change
 *   staleSnapshotCheck('tenantctl_fence', 'switch', 'a tenant of this pool moved') // plpgsql
 */
import type pg from 'pg';
import { literal, qualified } from '../../sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** SQLSTATE of a statement whose transaction's snapshot predates a fence change: retry the transaction. */
export const STALE_SNAPSHOT_SQLSTATE = '40001';

const names = (schema: string, kind: string) => ({ xid: `${schema}.${kind}_xid`, done: `${schema}.${kind}_done` });

/** Both sequences of `kind` in `schema` (made once; new objects, no lock on any shared table). */
export async function ensureEpoch(c: Queryable, schema: string, kind: string): Promise<void> {
  const n = names(schema, kind);
  const r = await c.query<{ xid: string | null; done: string | null }>('select to_regclass($1) as xid, to_regclass($2) as done', [
    n.xid,
    n.done,
  ]);
  if (r.rows[0].xid && r.rows[0].done) return;
  for (const seq of [qualified(schema, `${kind}_xid`), qualified(schema, `${kind}_done`)]) {
    await c.query(`create sequence if not exists ${seq} minvalue 0 start 0`);
    // Read by every tenant's check (a value says only that some change happened); set only by tenantctl.
    await c.query(`grant select on sequence ${seq} to public`);
  }
}

/**
 * Inside the change's transaction: changes of this kind in the pool serialised by a SHARE ROW
 * EXCLUSIVE lock on `table` (the fence's own table, held to commit; a tenant, with SELECT only,
 * cannot take a lock that conflicts), then the previous change, if it committed, becomes `done`
 * and this one's id the latest.
 */
export async function recordEpoch(c: Queryable, schema: string, kind: string, table: string): Promise<void> {
  await c.query(`lock table ${table} in share row exclusive mode`);
  const n = names(schema, kind);
  await c.query(
    `select setval($2::regclass, x) from (select pg_sequence_last_value($1::regclass) as x) last
      where x is not null and pg_xact_status(x::text::xid8) = 'committed'`,
    [n.xid, n.done],
  );
  await c.query('select setval($1::regclass, pg_current_xact_id()::text::bigint)', [n.xid]);
}

/**
 * PL/pgSQL statements for a check function: raise 40001 with `what` when the transaction is not
 * READ COMMITTED and a change of `kind` committed unseen by its snapshot.
 * Needs a declared `x xid8` variable. Read committed statements take their snapshot per query.
 */
export function staleSnapshotCheck(schema: string, kind: string, what: string): string {
  const n = names(schema, kind);
  return `
      if current_setting('transaction_isolation') <> 'read committed' then
        foreach x in array array[pg_sequence_last_value(${literal(n.xid)}::regclass)::text::xid8,
                                 pg_sequence_last_value(${literal(n.done)}::regclass)::text::xid8] loop
          if x is not null and pg_xact_status(x) = 'committed' and not pg_visible_in_snapshot(x, pg_current_snapshot()) then
            raise exception ${literal(`${what} after this transaction took its snapshot: retry the transaction`)}
              using errcode = '${STALE_SNAPSHOT_SQLSTATE}', hint = 'a transaction begun again sees it';
          end if;
        end loop;
      end if;`;
}
