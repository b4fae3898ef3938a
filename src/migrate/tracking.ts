import type pg from 'pg';
import { META_SCHEMA } from '../placement/naming.js';
import { ident, isAlreadyExists, literal, qualified } from '../sql.js';
import { xactLockInReach } from '../operations/lock-holder.js';
import type { MigrationFile } from './files.js';

/**
 * Which migrations each target has, recorded in its own database:
 * `tenantctl.schema_migrations (target_schema, name, checksum, applied_at, duration_ms)`.
 * One table per database serves every schema in it, so `migrate status` reads a database of
 * a thousand schema tenants in one query.
 */
export const TRACKING_TABLE = 'schema_migrations';
export const TRACKING = qualified(META_SCHEMA, TRACKING_TABLE);

/**
 * duration_ms of a row written inside the migration's transaction: the transaction's time so far.
 * The tracking table has it as the column's default, so a row written in SQL text leaves the
 * column out: an expression in the text is parsed and resolved (functions, operators, a cast) by
 * every INSERT, 30 µs of the server's time per row on this machine, as much as the insert itself
 * (20,000 inserts: 1.45–1.84 s with it, 0.82–0.85 s through the default).
 */
const DURATION_SQL = '(extract(epoch from clock_timestamp() - now()) * 1000)::int';

/**
 * Whether the database's tracking table has DURATION_SQL as duration_ms' default ("timed"); tables
 * made before it was added have none until `ensureDurationDefault`. Bound to the table's name as $1.
 */
export const TIMED_SQL = `exists (select from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
   where d.adrelid = to_regclass($1) and a.attname = 'duration_ms'
     and pg_get_expr(d.adbin, d.adrelid) like '%clock_timestamp() - now()%')`;

/** Anything with pg's query method: a ShardClient, a pg.Client or a pool client. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface AppliedRow {
  /** The target schema (`app`, `t_acme`). */
  schema: string;
  /** Migration id, `0004_add_archived_at`. */
  name: string;
  checksum: string;
  /** Only when read with details (the hot paths skip it: dates cost a parse per row). */
  appliedAt?: Date;
  durationMs?: number | null;
}

/** A migration whose file changed after it was applied somewhere. */
export interface Drift {
  migration: string;
  appliedChecksum: string;
  fileChecksum: string;
}

export interface PendingReport {
  /** Applied at the target, in file order. */
  applied: string[];
  /** Not yet applied, in file order: what `migrate up` would run. */
  pending: MigrationFile[];
  /** Applied, but the file's checksum differs: the target refuses to migrate. */
  drift: Drift[];
  /** Applied at the target with no file here (a newer release ran, or a file was deleted). */
  unknown: string[];
}

/**
 * Applied rows for every schema of the database the client is on, or only for `schemas`, in one
 * query. Returns [] when the tracking table does not exist yet; never creates it (safe for dry
 * runs and `migrate status`).
 *
 * @example
 *   const rows = await readApplied(client, ['t_acme', 't_globex']);
 *   const bySchema = groupBySchema(rows);
 */
export async function readApplied(client: Queryable, schemas?: string[]): Promise<AppliedRow[]> {
  const exists = await client.query<{ t: string | null }>('select to_regclass($1)::text as t', [
    `${ident(META_SCHEMA)}.${ident(TRACKING_TABLE)}`,
  ]);
  if (!exists.rows[0]?.t) return [];
  if (schemas && schemas.length === 0) return [];
  const res = await client.query<AppliedDbRow>(
    `select target_schema, name, checksum from ${TRACKING}
      where $1::text[] is null or target_schema = any($1::text[])
      order by target_schema, name`,
    [schemas ?? null],
  );
  return rowsOfApplied(res.rows);
}

type AppliedDbRow = { target_schema: string; name: string; checksum: string };

/** The applied rows of one schema, as SQL text with the schema as a literal (to share a round trip). */
export function appliedRowsSql(schema: string): string {
  return `select target_schema, name, checksum from ${TRACKING} where target_schema = ${literal(schema)} order by name`;
}

/** The rows of appliedRowsSql (or readApplied's query) as AppliedRows. */
export function rowsOfApplied(rows: AppliedDbRow[]): AppliedRow[] {
  return rows.map((r) => ({ schema: r.target_schema, name: r.name, checksum: r.checksum }));
}

/** One schema's applied rows, when the tracking table is known to exist. */
export async function readAppliedRows(client: Queryable, schema: string): Promise<AppliedRow[]> {
  const res = await client.query<AppliedDbRow>(
    `select target_schema, name, checksum from ${TRACKING} where target_schema = $1 order by name`,
    [schema],
  );
  return rowsOfApplied(res.rows);
}

/**
 * The version a target is at: the highest migration applied there (ids start with their
 * four-digit number, so text order is number order), or null when nothing is.
 */
export function versionOf(applied: Iterable<string>): string | null {
  let max: string | null = null;
  for (const id of applied) if (max === null || id > max) max = id;
  return max;
}

/** Rows of readApplied keyed by schema (schemas with nothing applied are absent). */
export function groupBySchema(rows: AppliedRow[]): Map<string, AppliedRow[]> {
  const out = new Map<string, AppliedRow[]>();
  for (const r of rows) {
    const list = out.get(r.schema);
    if (list) list.push(r);
    else out.set(r.schema, [r]);
  }
  return out;
}

/**
 * Compare one target's applied rows with the files: what is pending, what drifted, what the
 * target has that the files do not. Pure.
 *
 * A pending migration numbered below an applied one (a branch merged late) is still pending:
 * it runs, in file order, after the others.
 *
 * @example
 *   const { pending, drift } = pendingFor(migrations, bySchema.get('t_acme') ?? []);
 */
export function pendingFor(migrations: MigrationFile[], appliedRows: AppliedRow[]): PendingReport {
  const applied = new Map(appliedRows.map((r) => [r.name, r]));
  const files = new Set(migrations.map((m) => m.id));
  const report: PendingReport = { applied: [], pending: [], drift: [], unknown: [] };
  for (const m of migrations) {
    const row = applied.get(m.id);
    if (!row) {
      report.pending.push(m);
      continue;
    }
    report.applied.push(m.id);
    if (row.checksum !== m.checksum) {
      report.drift.push({ migration: m.id, appliedChecksum: row.checksum, fileChecksum: m.checksum });
    }
  }
  for (const r of appliedRows) if (!files.has(r.name)) report.unknown.push(r.name);
  report.unknown.sort();
  return report;
}

/**
 * Create tenantctl's schema and tracking table in the client's database if missing. Called on the
 * first real apply, never on a dry run. Safe when many schemas of one database start at once:
 * the creation is serialised by a transaction-level advisory lock.
 */
export async function ensureTrackingTable(client: Queryable, lockClassId: number): Promise<void> {
  // A session that waited for the lock can still hold a stale "does not exist" in its catalog
  // cache and collide with the creator (unique violation on pg_namespace); a new transaction
  // reads fresh, so such a collision is retried once the other side has committed.
  for (let attempt = 1; ; attempt++) {
    const exists = await client.query<{ t: string | null }>('select to_regclass($1)::text as t', [TRACKING]);
    if (exists.rows[0]?.t) return;
    await client.query('begin');
    try {
      // Tenants can connect here: a foreign holder of this key is named, not waited on.
      await xactLockInReach(client, lockClassId, null, `creating ${TRACKING} in database ${await currentDatabase(client)}`);
      await client.query(`create schema if not exists ${ident(META_SCHEMA)}`);
      await client.query(
        `create table if not exists ${TRACKING} (
           target_schema text not null,
           name text not null,
           checksum text not null,
           applied_at timestamptz not null default now(),
           duration_ms integer default ${DURATION_SQL},
           primary key (target_schema, name)
         )`,
      );
      await client.query('commit');
      return;
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      if (attempt >= 3 || !isAlreadyExists(err)) throw err;
    }
  }
}

/**
 * Give a tracking table made before DURATION_SQL was its default that default (see TIMED_SQL);
 * true when the table has it now. Only tenantctl writes this table, and only briefly waits for
 * its lock: a reader holding it (a long `migrate status`) leaves the table as it is, and the rows
 * keep naming their duration in the text.
 */
export async function ensureDurationDefault(client: Queryable): Promise<boolean> {
  const now = await client.query<{ timed: boolean }>(`select ${TIMED_SQL} as timed`, [TRACKING]);
  if (now.rows[0]?.timed) return true;
  try {
    await client.query('begin');
    await client.query(`set local lock_timeout = '1s'`);
    await client.query(`alter table ${TRACKING} alter column duration_ms set default ${DURATION_SQL}`);
    await client.query('commit');
    return true;
  } catch {
    await client.query('rollback').catch(() => undefined);
    return false;
  }
}

/**
 * The INSERT of recordApplied as SQL text (to share a round trip with the migration and its
 * commit); duration_ms is the transaction's time so far.
 */
export function recordAppliedSql(schema: string, m: Pick<MigrationFile, 'id' | 'checksum'>): string {
  const [before, after] = recordAppliedParts(m);
  return `${before}${literal(schema)}${after}`;
}

/**
 * recordAppliedSql's text before and after the schema's literal (a batch fills in many schemas).
 * `timed`: the table has DURATION_SQL as the column's default (TIMED_SQL), which then measures.
 */
export function recordAppliedParts(m: Pick<MigrationFile, 'id' | 'checksum'>, timed = false): [string, string] {
  const [column, value] = timed ? ['', ''] : [', duration_ms', `, ${DURATION_SQL}`];
  return [
    `insert into ${TRACKING} (target_schema, name, checksum${column}) values (`,
    `, ${literal(m.id)}, ${literal(m.checksum)}${value})`,
  ];
}

/** Record one applied migration (inside the migration's transaction when it has one). */
export async function recordApplied(
  client: Queryable,
  schema: string,
  m: Pick<MigrationFile, 'id' | 'checksum'>,
  durationMs: number,
): Promise<void> {
  await client.query(`insert into ${TRACKING} (target_schema, name, checksum, duration_ms) values ($1, $2, $3, $4)`, [
    schema,
    m.id,
    m.checksum,
    Math.round(durationMs),
  ]);
}

async function currentDatabase(client: Queryable): Promise<string> {
  return (await client.query<{ d: string }>('select current_database() as d')).rows[0].d;
}
