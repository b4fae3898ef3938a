import { userTriggersOff } from '../../copy/user-triggers.js';
import type pg from 'pg';
import type { Config } from '../../config/types.js';
import type { Fleet } from '../../fleet/fleet.js';
import { ident, literal, qualified } from '../../sql.js';
import type { CopyTable } from '../../copy/tables.js';
import type { MoveEnd } from '../plan.js';
import { type CaptureRecord, changeTable } from './install.js';
import { drivers } from '../../placement/drivers.js';
import { MODEL_TRAITS } from '../../placement/placement.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** Changes read and applied per round trip. */
const PAGE = 1000;

/** A table as replay writes it at the target: its stored columns and primary key. */
export interface ReplayTable {
  table: string;
  keyColumn: string;
  columns: string[];
  pk: string[];
  /** `GENERATED ALWAYS AS IDENTITY` columns: written with OVERRIDING SYSTEM VALUE, never in an upsert's SET. */
  alwaysIdentity: string[];
}

/** The tables' primary-key and always-identity columns, read at the source (preflight has proved every table has a key). */
export async function replayTables(c: Q, schema: string, tables: CopyTable[]): Promise<ReplayTable[]> {
  const names = tables.map((t) => t.table);
  const { rows } = await c.query<{ table: string; cols: string[] }>(
    `select c.relname as table, array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum)) as cols
       from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey)
      where n.nspname = $1 and c.relname = any($2) and i.indisprimary group by c.relname`,
    [schema, names],
  );
  const { rows: identity } = await c.query<{ table: string; cols: string[] }>(
    `select c.relname as table, array_agg(a.attname::text) as cols
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2) and a.attidentity = 'a' and not a.attisdropped group by c.relname`,
    [schema, names],
  );
  const pk = new Map(rows.map((r) => [r.table, r.cols]));
  const always = new Map(identity.map((r) => [r.table, r.cols]));
  return tables.map((t) => ({
    table: t.table,
    keyColumn: t.keyColumn,
    columns: t.columns,
    pk: pk.get(t.table) ?? [],
    alwaysIdentity: always.get(t.table) ?? [],
  }));
}

export interface RoundResult {
  changes: number;
  ms: number;
  /** Per table, the row images (jsonb text) of the round's changes. */
  touched: Map<string, string[]>;
  /** Tables the round emptied of the tenant's rows (a TRUNCATE at the source). */
  truncated: Set<string>;
}

/**
 * Replays a move's captured changes at the target, round by round. Each round reads, in ONE
 * repeatable-read snapshot S of the source, the changes of the transactions visible in S but not
 * in the previous round's snapshot (the first "previous" is the copy's snapshot), so every
 * committed change is applied exactly once whatever order its transaction committed in, and none
 * the copy already holds. They are applied in capture order (the change table's bigserial: a row's
 * changes are ordered by its row lock, so a row's last change is applied last) in ONE target
 * transaction, as upserts and deletes by primary key: what the source's row became, or that it is
 * gone. Into a pool, only rows with the tenant's key are written (an update that moved a row to
 * another key deletes it here). Like logical replication, the target's triggers (and so its
 * foreign-key checks) are off while applying, where the role may say so: the source's rows
 * already passed them, and the final digests compare both sides.
 */
export class Replayer {
  private readonly sql: Map<string, ReturnType<typeof statements>>;
  constructor(
    private readonly fleet: Fleet,
    private readonly capture: CaptureRecord,
    private readonly to: MoveEnd,
    key: string,
    tables: ReplayTable[],
    config: Pick<Config, 'tenantKey'>,
    /** The snapshot (pg_snapshot text) whose changes the target already holds. */
    private seen: string,
  ) {
    const driver = drivers[to.model];
    const mine = (t: ReplayTable) => (alias: string) => driver.keyFilter(t.keyColumn, config.tenantKey.type, key, alias) ?? 'true';
    this.sql = new Map(tables.map((t) => [t.table, statements(to.schema, t, mine(t))]));
  }

  /**
   * Apply everything committed at the source since the last round; returns how many changes and,
   * per table, the row images they carried (old and new: the rows a delta check compares).
   * `atSnapshot` runs once the target has committed, on the source still in the round's snapshot:
   * both sides then hold the same state (the tests of that state read the source there).
   */
  async round(o: { atSnapshot?: (source: Q) => Promise<void> } = {}): Promise<RoundResult> {
    const started = Date.now();
    let changes = 0;
    const touched = new Map<string, string[]>();
    const truncated = new Set<string>();
    await this.fleet.withClient(this.capture.shard, this.capture.database, async (s) => {
      await s.query('begin isolation level repeatable read read only');
      try {
        const snap = (await s.query<{ s: string }>('select pg_current_snapshot()::text as s')).rows[0].s;
        await this.fleet.withTransaction(this.to.shard, this.to.database, async (t) => {
          await t.query('savepoint tenantctl_replica');
          let triggersOn: (() => Promise<void>) | undefined;
          try {
            await t.query('set local session_replication_role = replica');
            await t.query('release savepoint tenantctl_replica');
          } catch {
            await t.query('rollback to savepoint tenantctl_replica');
            // Without the grant, a new placement's user triggers are switched off for the round
            // instead (nobody else reaches it before the switch); a pool's fire (shared tables).
            if (!MODEL_TRAITS[this.to.model].sharedTables) triggersOn = await userTriggersOff(t, this.to.schema);
          }
          let last = 0;
          for (;;) {
            // The id as text (a bigint), named apart from the column so that ORDER BY sorts the numbers.
            const { rows } = await s.query<{ seq: string; tbl: string; op: string; old: string | null; new: string | null }>(
              `select id::text as seq, tbl, op, old::text as old, new::text as new from ${changeTable(this.capture.id)}
                where txid >= pg_snapshot_xmin($1::pg_snapshot) and not pg_visible_in_snapshot(txid, $1::pg_snapshot) and id > $2
                order by id limit ${PAGE}`,
              [this.seen, last],
            );
            if (rows.length === 0) break;
            const text = rows.map((r) => this.statementFor(r)).join(';\n');
            await t.query(text);
            for (const r of rows) {
              const list = touched.get(r.tbl) ?? touched.set(r.tbl, []).get(r.tbl)!;
              for (const img of [r.old, r.new]) if (img) list.push(img);
              if (r.op === 'T') truncated.add(r.tbl);
            }
            changes += rows.length;
            last = Number(rows.at(-1)!.seq);
            if (rows.length < PAGE) break;
          }
          await triggersOn?.();
        });
        await o.atSnapshot?.(s);
        await s.query('commit');
        this.seen = snap;
      } catch (err) {
        await s.query('rollback').catch(() => undefined);
        throw err;
      }
    });
    return { changes, ms: Date.now() - started, touched, truncated };
  }

  private statementFor(r: { tbl: string; op: string; old: string | null; new: string | null }): string {
    const s = this.sql.get(r.tbl);
    if (!s) throw new Error(`a captured change names ${r.tbl}, which is not one of the move's tables`);
    switch (r.op) {
      case 'I':
        return s.upsert(r.new!);
      case 'U':
        return `${s.deleteMoved(r.old!, r.new!)};\n${s.upsert(r.new!)}`;
      case 'D':
        return s.delete(r.old!);
      default:
        return s.truncate;
    }
  }
}

/** The statements of one table, each taking row images as jsonb literals (one round trip carries a page of them). */
function statements(schema: string, t: ReplayTable, mine: (alias: string) => string) {
  const target = qualified(schema, t.table);
  const rec = (json: string) => `jsonb_populate_record(null::${target}, ${literal(json)}::jsonb)`;
  const cols = t.columns.map(ident).join(', ');
  const same = (a: string, b: string) => t.pk.map((c) => `${a}.${ident(c)} = ${b}.${ident(c)}`).join(' and ');
  // An always-identity column takes the source's value only through OVERRIDING SYSTEM VALUE, and
  // may not be SET by an update (PostgreSQL: "can only be updated to DEFAULT"); its value at the
  // source changes only to a new DEFAULT, which the final digests would then tell apart.
  const rest = t.columns.filter((c) => !t.pk.includes(c) && !t.alwaysIdentity.includes(c));
  const onConflict = rest.length ? `do update set ${rest.map((c) => `${ident(c)} = excluded.${ident(c)}`).join(', ')}` : 'do nothing';
  const pk = t.pk.map(ident).join(', ');
  const overriding = t.alwaysIdentity.length ? ' overriding system value' : '';
  return {
    upsert: (row: string) =>
      `insert into ${target} (${cols})${overriding} select ${cols} from ${rec(row)} n where ${mine('n')} on conflict (${pk}) ${onConflict}`,
    delete: (row: string) => `delete from ${target} x using ${rec(row)} o where ${same('x', 'o')}`,
    /** An update whose row changed its primary key, or left the tenant: the old row goes. */
    deleteMoved: (old: string, row: string) =>
      `delete from ${target} x using ${rec(old)} o, ${rec(row)} n where ${same('x', 'o')} and not (${same('n', 'o')} and ${mine('n')})`,
    truncate: `delete from ${target} x where ${mine('x')}`,
  };
}
