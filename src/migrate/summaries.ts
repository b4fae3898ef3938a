import type { MigrationFile } from './files.js';
import { groupBySchema, readApplied, TIMED_SQL, TRACKING, type AppliedRow, type Queryable } from './tracking.js';

/**
 * What readSummaries says about a database: each schema exactly at head (every file applied with
 * its checksum, nothing else) is 'head'; any other schema names its applied list by a key, and
 * each distinct list is built once (a thousand schemas one migration behind share one).
 * Schemas with nothing applied are absent.
 */
export interface DatabaseSummary {
  /** The database has the tracking table. */
  tracked: boolean;
  /** Its duration_ms measures by default (tracking.ts TIMED_SQL). */
  timed: boolean;
  schemas: Map<string, 'head' | string>;
  /** Applied rows of each distinct list, by key (rows carry no schema). */
  lists: Map<string, AppliedRow[]>;
}

/**
 * Like readApplied, but PostgreSQL compares each schema's applied rows with the files and answers
 * three numbers per schema: how many rows, how many match a file's id and checksum, and the
 * highest id. When every row matches and the highest is the n-th file, the schema has exactly
 * the first n files (ids are unique and sorted), so its list is known without its rows: a fleet
 * at head or a few files behind costs one short row per schema and a hash aggregate over the
 * tracking table, however long its history (no per-schema string of every applied row, no sort).
 * Only the other schemas (drift, unknown ids, a gap) have their rows read, in a second query.
 */
/** Up to this many schemas are looked up by the index; more read the whole table once. */
const FILTER_UP_TO = 100;

export async function readSummaries(client: Queryable, schemas: string[], migrations: MigrationFile[]): Promise<DatabaseSummary> {
  const out: DatabaseSummary = { tracked: false, timed: false, schemas: new Map(), lists: new Map() };
  const exists = await client.query<{ t: string | null; timed: boolean }>(`select to_regclass($1)::text as t, ${TIMED_SQL} as timed`, [
    TRACKING,
  ]);
  if (!exists.rows[0]?.t) return out;
  out.tracked = true;
  out.timed = exists.rows[0].timed;
  if (schemas.length === 0) return out;
  // name and checksum never contain ' ': ids are [0-9a-z_], checksums hex.
  const pairs = migrations.map((m) => `${m.id} ${m.checksum}`);
  // Many schemas: one pass over the table beats an index descent per schema (5,000 of them took
  // 0.3 s against 0.03 s); the rows of schemas not asked for are dropped here.
  const wide = schemas.length > FILTER_UP_TO;
  const res = await client.query<{ s: string; n: number; ok: number; top: string }>(
    `select target_schema as s, count(*)::int as n, count(*) filter (where name || ' ' || checksum = any($1::text[]))::int as ok,
            max(name) as top
       from ${TRACKING} ${wide ? '' : 'where target_schema = any($2::text[])'} group by target_schema`,
    wide ? [pairs] : [pairs, schemas],
  );
  const asked = wide ? new Set(schemas) : undefined;
  const irregular: string[] = [];
  for (const r of res.rows) {
    if (asked && !asked.has(r.s)) continue;
    if (r.n !== r.ok || migrations[r.n - 1]?.id !== r.top) irregular.push(r.s);
    else if (r.n === migrations.length) out.schemas.set(r.s, 'head');
    else out.schemas.set(r.s, prefixList(out, migrations, r.n));
  }
  if (irregular.length > 0) await readIrregular(client, out, irregular);
  return out;
}

/** The key of the list "the first n files", made once per n. */
function prefixList(out: DatabaseSummary, migrations: MigrationFile[], n: number): string {
  const key = `first ${n}`;
  if (!out.lists.has(key))
    out.lists.set(
      key,
      migrations.slice(0, n).map((m) => ({ schema: '', name: m.id, checksum: m.checksum })),
    );
  return key;
}

/** Schemas whose rows are not a prefix of the files: their rows, one list per distinct content. */
async function readIrregular(client: Queryable, out: DatabaseSummary, schemas: string[]): Promise<void> {
  const bySchema = groupBySchema(await readApplied(client, schemas));
  const byContent = new Map<string, string>();
  for (const [schema, rows] of bySchema) {
    const content = rows.map((r) => `${r.name} ${r.checksum}`).join(',');
    let key = byContent.get(content);
    if (key === undefined) {
      key = `list ${byContent.size}`;
      byContent.set(content, key);
      out.lists.set(key, rows);
    }
    out.schemas.set(schema, key);
  }
}
