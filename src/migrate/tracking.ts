import type pg from 'pg';
import { META_SCHEMA } from '../placement/naming.js';
import { ident, qualified } from '../sql.js';
import type { MigrationFile } from './files.js';

/**
 * Which migrations each target has, recorded in its own database:
 * `tenantctl.schema_migrations (target_schema, name, checksum, applied_at, duration_ms)`.
 * One table per database serves every schema in it, so `migrate status` reads a database of
 * a thousand schema tenants in one query.
 */
export const TRACKING_TABLE = 'schema_migrations';
export const TRACKING = qualified(META_SCHEMA, TRACKING_TABLE);

/** Anything with pg's query method: a ShardClient, a pg.Client or a pool client. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface AppliedRow {
  /** The target schema (`app`, `t_acme`). */
  schema: string;
  /** Migration id, `0004_add_archived_at`. */
  name: string;
  checksum: string;
  appliedAt: Date;
  durationMs: number | null;
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
  const res = await client.query<{
    target_schema: string;
    name: string;
    checksum: string;
    applied_at: Date;
    duration_ms: number | null;
  }>(
    `select target_schema, name, checksum, applied_at, duration_ms from ${TRACKING}
      where $1::text[] is null or target_schema = any($1::text[])
      order by target_schema, name`,
    [schemas ?? null],
  );
  return res.rows.map((r) => ({
    schema: r.target_schema,
    name: r.name,
    checksum: r.checksum,
    appliedAt: r.applied_at,
    durationMs: r.duration_ms,
  }));
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
      await client.query('select pg_advisory_xact_lock($1::int, 0)', [lockClassId]);
      await client.query(`create schema if not exists ${ident(META_SCHEMA)}`);
      await client.query(
        `create table if not exists ${TRACKING} (
           target_schema text not null,
           name text not null,
           checksum text not null,
           applied_at timestamptz not null default now(),
           duration_ms integer,
           primary key (target_schema, name)
         )`,
      );
      await client.query('commit');
      return;
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      const code = (err as { code?: string }).code;
      if (attempt >= 3 || !(code === '23505' || code === '42P06' || code === '42P07')) throw err;
    }
  }
}

/** Record one applied migration (inside the migration's transaction when it has one). */
export async function recordApplied(
  client: Queryable,
  schema: string,
  m: Pick<MigrationFile, 'id' | 'checksum'>,
  durationMs: number,
): Promise<void> {
  await client.query(
    `insert into ${TRACKING} (target_schema, name, checksum, duration_ms) values ($1, $2, $3, $4)`,
    [schema, m.id, m.checksum, Math.round(durationMs)],
  );
}
