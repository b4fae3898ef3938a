import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import type { MigrationFile } from '../../src/migrate/files.js';
import { readSummaries } from '../../src/migrate/summaries.js';
import { ensureTrackingTable, groupBySchema, pendingFor, readApplied } from '../../src/migrate/tracking.js';
import { ident } from '../../src/sql.js';
import { dropDatabasesAsSuperuser } from '../helpers/test-fleet.js';

/**
 * readSummaries (how migrate up and status read a database of schema targets) against the plain
 * rows: every shape of history gives the report readApplied + pendingFor gives, whether the
 * schemas are looked up by the index (a few) or the table is read once (many). A fresh database
 * on the shared fleet, tracking rows written by hand.
 */
const config = loadConfig({ file: inject('fleetConfigFile') });
const shard = config.shards[0];
const dbName = `sum_${randomBytes(3).toString('hex')}`;
let c: pg.Client;

const file = (id: string, checksum: string): MigrationFile =>
  ({ id, file: `${id}.sql`, kind: 'sql', checksum, transactional: true, sql: '' }) as unknown as MigrationFile;
const files = [file('0001_a', 'c1'), file('0002_b', 'c2'), file('0003_c', 'c3'), file('0004_d', 'c4')];

/** Schema → its applied rows (name, checksum). */
const shapes: Record<string, [string, string][]> = {
  s_head: files.map((m) => [m.id, m.checksum]),
  s_behind: [
    ['0001_a', 'c1'],
    ['0002_b', 'c2'],
  ],
  s_behind_too: [
    ['0001_a', 'c1'],
    ['0002_b', 'c2'],
  ],
  s_gap: [
    ['0001_a', 'c1'],
    ['0003_c', 'c3'],
  ],
  s_drift: [
    ['0001_a', 'c1'],
    ['0002_b', 'edited'],
  ],
  s_unknown: [...files.map((m): [string, string] => [m.id, m.checksum]), ['0009_newer', 'c9']],
  s_only_unknown: [['0000_older', 'c0']],
};

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: shard.url });
  await admin.connect();
  await admin.query(`create database ${ident(dbName)}`);
  await admin.end();
  c = new pg.Client({ connectionString: databaseUrl(shard.url, dbName) });
  await c.connect();
  await ensureTrackingTable(c, 1);
  for (const [schema, rows] of Object.entries(shapes))
    for (const [name, checksum] of rows)
      await c.query('insert into tenantctl.schema_migrations (target_schema, name, checksum) values ($1, $2, $3)', [
        schema,
        name,
        checksum,
      ]);
  // Many schemas at head, so that the wide path (one pass over the table) is taken too.
  await c.query(
    `insert into tenantctl.schema_migrations (target_schema, name, checksum)
     select 'w_' || i, f.name, f.checksum from generate_series(1, 150) i, unnest($1::text[], $2::text[]) as f(name, checksum)`,
    [files.map((m) => m.id), files.map((m) => m.checksum)],
  );
});

afterAll(async () => {
  await c?.end();
  await dropDatabasesAsSuperuser(shard.url, [dbName]);
});

async function expectSameReports(schemas: string[]): Promise<void> {
  const summary = await readSummaries(c, schemas, files);
  const rows = groupBySchema(await readApplied(c, schemas));
  expect(summary.tracked).toBe(true);
  for (const schema of schemas) {
    const s = summary.schemas.get(schema);
    const fromSummary =
      s === 'head' ? pendingFor(files, rows.get(schema) ?? []) : pendingFor(files, s === undefined ? [] : summary.lists.get(s)!);
    const fromRows = pendingFor(files, rows.get(schema) ?? []);
    expect({ schema, ...fromSummary, pending: fromSummary.pending.map((m) => m.id) }).toEqual({
      schema,
      ...fromRows,
      pending: fromRows.pending.map((m) => m.id),
    });
    expect(s === 'head').toBe(schema === 's_head' || schema.startsWith('w_'));
  }
}

describe('readSummaries', () => {
  it('gives the same report as the plain rows for every shape of history, a few schemas by the index', async () => {
    await expectSameReports([...Object.keys(shapes), 's_never']);
  });

  it('and with more schemas than the index lookup takes (one pass over the table, others dropped)', async () => {
    const many = [...Object.keys(shapes), 's_never', ...Array.from({ length: 120 }, (_, i) => `w_${i + 1}`)];
    await expectSameReports(many);
    const summary = await readSummaries(c, many, files);
    expect(summary.schemas.has('w_140')).toBe(false);
    // Schemas with the same prefix of the files share one list.
    expect(summary.schemas.get('s_behind')).toBe(summary.schemas.get('s_behind_too'));
  });
});
