import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partsPerTable } from '../../src/copy/pool-load-split.js';
import type { CopyTable } from '../../src/copy/tables.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { Fleet } from '../../src/fleet/fleet.js';
import type { MoveEnd, MovePlan } from '../../src/move/plan.js';
import { warmMoveConnections } from '../../src/move/warm.js';
import { poolKeyRows, rowsWithKey, rowsWithKeyAtOnce } from '../../src/placement/pool/rows.js';
import { migrateEnv, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { sharedFleet } from '../helpers/shared-fleet.js';

/**
 * The offline pool move's start (issue 22.5): its connections opened at once before the preflight
 * (src/move/warm.ts), and each table's row count for the split load asked while the earlier
 * tables load (src/copy/pool-load-split.ts). On the shared fleet, in an environment of its own;
 * only this file's Fleet objects are counted, never the fleet's connections.
 */
const shared = sharedFleet();
let e: MigrateEnv;
const DB = 'pm9_split';
const KEYS_DB = 'pm12_keys';
beforeAll(async () => {
  // eu1 with a budget of 3: warming must leave its last free slot.
  e = await migrateEnv(shared, 'pm9warm', { maxConnections: { eu1: 3 } });
});
afterAll(async () => {
  await e?.q('us1', 'postgres', `drop database if exists ${DB}`).catch(() => undefined);
  await e?.q('us1', 'postgres', `drop database if exists ${KEYS_DB}`).catch(() => undefined);
  await e?.close();
});

const end = (model: MoveEnd['model'], shard: string): MoveEnd => ({
  model,
  shard,
  region: shard === 'eu1' ? 'eu-west' : 'us-east',
  database: 'postgres',
  schema: 'app',
  target: `${shard}/postgres/app`,
});
const plan = (to: MoveEnd): MovePlan => ({ tenant: 'pm9-a', key: 'k', residency: null, from: end('pool', 'us1'), to });

describe('an offline move into a pool opens its connections at once (warm.ts)', () => {
  it("opens the source's 3 and the target's 2 at once, idle for the move to reuse, leaving each shard's last free slot", async () => {
    const fleet = new Fleet(e.config);
    try {
      // One eu1 connection already held: of its budget of 3, warming may open 1 more.
      const held = await fleet.connections('eu1').acquire('postgres');
      await warmMoveConnections(fleet, plan(end('pool', 'eu1')));
      expect(fleet.connections('us1').openCount).toBe(3);
      expect(fleet.connections('eu1').openCount).toBe(2);
      fleet.connections('eu1').release(held);
      // Reused as they are: taking 3 at the source opens none.
      await fleet.withSpareClients('us1', 'postgres', 3, async (cs) => {
        expect(cs).toHaveLength(3);
        await Promise.all(cs.map((c) => c.query('select 1')));
      });
      expect(fleet.peaks()).toEqual({ us1: 3, eu1: 2 });
    } finally {
      await fleet.close();
    }
  });

  it('warms nothing for a new placement (its database does not exist yet)', async () => {
    const fleet = new Fleet(e.config);
    try {
      await warmMoveConnections(fleet, plan(end('schema', 'eu1')));
      expect(fleet.peaks()).toEqual({});
    } finally {
      await fleet.close();
    }
  });
});

describe("the split load's row counts (partsPerTable)", () => {
  it("answers before the counts end; each table's count (or its failure) comes when that table asks", async () => {
    await e.q('us1', 'postgres', `create database ${DB}`);
    const url = databaseUrl(e.config.shards.find((s) => s.name === 'us1')!.url, DB);
    await withPg(url, async (c) => {
      await c.query(`create schema s;
        create table s.parent (k text, id int, primary key (k, id));
        create table s.child (k text, id int, pid int, primary key (k, id), foreign key (k, pid) references s.parent (k, id));
        insert into s.parent select 'a', i from generate_series(1, 10000) i;
        insert into s.parent select 'b', i from generate_series(1, 10) i;
        insert into s.child select 'a', i, i from generate_series(1, 3) i;`);
      const t = (table: string): CopyTable => ({ table, keyColumn: 'k', columns: ['k', 'id'], keyIndex: 0 });
      const parts = await partsPerTable(
        { target: c, source: c },
        's',
        [t('parent'), t('child'), t('gone')],
        { model: 'pool', schema: 's', key: 'a' },
        { tenantKey: { column: 'k', type: 'text', tables: {}, shared: {} } },
        2,
      );
      expect(parts).toBeDefined();
      // The third table's count fails (no such table): only when its turn comes, after the others answered.
      expect(await parts!.of(0)).toBe(2);
      expect(await parts!.of(1)).toBe(1);
      await expect(parts!.of(2)).rejects.toThrow(/gone/);
    });
  });
});

describe("a pool target's rows of the key, counted on several connections at once (preflight)", () => {
  it("counts each table on the next free connection, answers in the tables' order, and fails only once every count ended", async () => {
    await e.q('us1', 'postgres', `create database ${KEYS_DB}`);
    const url = databaseUrl(e.config.shards.find((s) => s.name === 'us1')!.url, KEYS_DB);
    await withPg(url, (c) =>
      c.query(`create schema s;
        create table s.a (k text, id int); create table s.b (k text, id int); create table s.c (k text, id int);
        insert into s.a select 'x', i from generate_series(1, 3) i;
        insert into s.c select 'x', i from generate_series(1, 5) i;
        insert into s.c select 'y', i from generate_series(1, 7) i;`),
    );
    const config = { tenantKey: { column: 'k', type: 'text', tables: {}, shared: {} } } as never;
    const tables = ['a', 'b', 'c'].map((table) => ({ table, column: 'k' }));
    const fleet = new Fleet(e.config);
    try {
      await fleet.withClient('us1', KEYS_DB, (one) =>
        fleet.withSpareClients('us1', KEYS_DB, 1, async (more) => {
          expect(more).toHaveLength(1);
          const cs = [one, ...more];
          const single = await rowsWithKey(one, tables, 's', 'x', config);
          expect(single).toEqual([
            { table: 'a', rows: 3 },
            { table: 'c', rows: 5 },
          ]);
          expect(await rowsWithKeyAtOnce(cs, tables, 's', 'x', config)).toEqual(single);
          // Each connection counted at least one table (children first: c, then b beside it).
          const pids = new Set(await Promise.all(cs.map(async (c) => (await c.query('select pg_backend_pid() as p')).rows[0].p)));
          expect(pids.size).toBe(2);
          // A table that is gone fails the count, after the other connection's count ended: both answer at once.
          const gone = [...tables, { table: 'gone', column: 'k' }];
          await expect(rowsWithKeyAtOnce(cs, gone, 's', 'x', config)).rejects.toThrow(/gone/);
          await Promise.all(cs.map((c) => c.query('select 1')));
        }),
      );
    } finally {
      await fleet.close();
    }
  });

  it("a move's count (atOnce 2) takes the target's second connection beside the first, with the same answer", async () => {
    await e.create([{ slug: 'pm12-k', model: 'pool', shard: 'eu1' }]);
    const t = await e.db.selectFrom('tenants').selectAll().where('slug', '=', 'pm12-k').executeTakeFirstOrThrow();
    const scope = { shard: 'eu1', database_name: t.database_name, schema_name: t.schema_name, key: t.key };
    await e.q('eu1', t.database_name, `insert into ${t.schema_name}.workspaces (id, name) values ($1, 'w')`, [t.key]);
    await e.q(
      'eu1',
      t.database_name,
      `insert into ${t.schema_name}.users (tenant_id, id, email, display_name) select $1, gen_random_uuid(), i || '@x.example', 'u' from generate_series(1, 4) i`,
      [t.key],
    );
    const counted = async (atOnce: number) => {
      const fleet = new Fleet(e.config);
      try {
        const rows = await poolKeyRows(fleet, e.config, scope, { atOnce });
        return { rows, peak: fleet.peaks().eu1 };
      } finally {
        await fleet.close();
      }
    };
    const one = await counted(1);
    expect(one.rows).toEqual([
      { table: 'workspaces', rows: 1 },
      { table: 'users', rows: 4 },
    ]);
    expect(one.peak).toBe(2); // the maintenance database's check, then the pool's one connection
    const two = await counted(2);
    expect(two.rows).toEqual(one.rows);
    expect(two.peak).toBe(3); // and the pool's second connection (the old code: 2)
  });
});
