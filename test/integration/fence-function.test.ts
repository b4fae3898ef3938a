import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { FENCE_SCHEMA } from '../../src/placement/pool/fence.js';
import { fenceTables } from '../../src/placement/table-fence.js';
import { migrateEnv, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { sharedFleet } from '../helpers/shared-fleet.js';

/**
 * The write fence of schema and database tenants (src/placement/fence-function.ts): every fence
 * used to CREATE OR REPLACE its trigger function, so two fences at once in one database (two
 * tenants of a schema database moved or restored together) updated the same pg_proc row and one
 * failed with "tuple concurrently updated" (fault-kill, move.after-fence). As the shard role, on
 * the shared fleet, in a scratch database of its own.
 */
const shared = sharedFleet();
let e: MigrateEnv;
const DB = 'fencefn_db';
const SCHEMAS = ['t_fa', 't_fb', 't_fc', 't_fd'];
const url = (): string => databaseUrl(e.config.shards[0].url, DB);

beforeAll(async () => {
  e = await migrateEnv(shared, 'fencefn');
  await e.q('us1', 'postgres', `drop database if exists ${DB}`);
  await e.q('us1', 'postgres', `create database ${DB}`);
  await withPg(url(), async (c) => {
    for (const s of SCHEMAS) await c.query(`create schema ${s}; create table ${s}.tasks (id int primary key)`);
  });
});
afterAll(async () => {
  await e?.q('us1', 'postgres', `drop database if exists ${DB}`).catch(() => undefined);
  await e?.close();
});

/** Fence `schema` in a transaction of its own; `hold` keeps the transaction open until it settles. */
async function fence(schema: string, hold?: Promise<void>): Promise<void> {
  await withPg(url(), async (c) => {
    await c.query('begin');
    try {
      await fenceTables(c, schema, 10_000);
      await hold;
      await c.query('commit');
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw err;
    }
  });
}

const functionRow = (c: pg.Client) =>
  c
    .query<{ xmin: string }>(
      `select p.xmin::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1 and p.proname = 'refuse_write'`,
      [FENCE_SCHEMA],
    )
    .then((r) => r.rows.map((x) => x.xmin));

describe('the fence function of a schema or database tenant', () => {
  it('is created once; a later fence writes no pg_proc row, and a fenced table refuses writes', async () => {
    await fence('t_fa');
    const first = await withPg(url(), functionRow);
    expect(first).toHaveLength(1);
    await fence('t_fb');
    // The old code replaced the function on every fence: a new row version (a new xmin).
    expect(await withPg(url(), functionRow)).toEqual(first);
    await expect(withPg(url(), (c) => c.query('insert into t_fb.tasks values (1)'))).rejects.toMatchObject({ code: '25006' });
  });

  it('two fences at once in one database both succeed while the function is outdated (one creates it, the other waits)', async () => {
    // An older tenantctl's body: both fences must replace it, one after the other.
    await withPg(url(), (c) =>
      c.query(
        `create or replace function ${FENCE_SCHEMA}.refuse_write() returns trigger language plpgsql as $fn$ begin return null; end $fn$`,
      ),
    );
    let open!: () => void;
    const held = new Promise<void>((r) => (open = r));
    const a = fence('t_fc', held);
    // b starts while a's transaction, which replaced the function, is still open.
    const b = fence('t_fd');
    const settled = Promise.allSettled([a, b]);
    setTimeout(open, 300);
    const [ra, rb] = await settled;
    expect([ra.status, rb.status], JSON.stringify([ra, rb].map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')))).toEqual([
      'fulfilled',
      'fulfilled',
    ]);
    await expect(withPg(url(), (c) => c.query('insert into t_fd.tasks values (1)'))).rejects.toMatchObject({ code: '25006' });
  });
});
