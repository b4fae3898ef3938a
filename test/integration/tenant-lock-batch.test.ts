import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { openCatalog, type CatalogDb } from '../../src/catalog/open.js';
import { TENANT_LOCK_CLASSID } from '../../src/operations/lock-ids.js';
import { describeTenantHolder, lockTenant } from '../../src/operations/tenant-lock.js';
import { TenantLockBatch } from '../../src/operations/tenant-lock-batch.js';

/**
 * The batched per-tenant lock of a fan-out, with locks taken ahead (lookAhead): a lock is never
 * taken twice (advisory locks stack in a session), a tenant another process holds is not taken
 * ahead and its own take still waits and names the holder, and close() leaves no lock and no
 * holder row behind, also of tenants taken ahead and never claimed. Real catalog.
 */
let db: CatalogDb;
let url: string;
const prefix = `tlb${process.pid}`;
const slugs = Array.from({ length: 40 }, (_, i) => `${prefix}-${i}`);

beforeAll(async () => {
  const config = loadConfig({ file: inject('fleetConfigFile') });
  url = config.catalogUrl;
  db = await openCatalog(config);
});
afterAll(async () => {
  await db?.destroy();
});

/** Advisory tenant locks held on the catalog for these slugs, and their holder rows. */
async function held(): Promise<{ locks: number; rows: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const locks = await c.query<{ n: number }>(
      `select count(*)::int as n from pg_locks l join unnest($1::text[]) s on l.objid = hashtext(s)::oid
        where l.locktype = 'advisory' and l.classid = $2::int::oid and l.objsubid = 2 and l.granted`,
      [slugs, TENANT_LOCK_CLASSID],
    );
    const rows = await c.query<{ n: number }>('select count(*)::int as n from tenant_locks where slug = any($1)', [slugs]);
    return { locks: locks.rows[0].n, rows: rows.rows[0].n };
  } finally {
    await c.end();
  }
}

describe('TenantLockBatch with look-ahead', () => {
  it('takes ahead in few statements, never twice, and close() releases everything, claimed or not', async () => {
    const locks = await TenantLockBatch.open(db, { command: 'test', wait: false });
    locks.lookAhead(slugs, 16);
    // Out of order: the 20th first, then the first five; the 20th must not be taken again ahead.
    const first = await locks.take(slugs[20]);
    const some = await Promise.all(slugs.slice(0, 5).map((s) => locks.take(s)));
    const h = await held();
    // Taken: the 6 claimed plus up to 16 ahead, each exactly once (a lock taken twice would
    // show once in pg_locks but need two unlocks: the check after close() catches that).
    expect(h.locks).toBeGreaterThanOrEqual(6);
    expect(h.locks).toBeLessThanOrEqual(6 + 16);
    // One holder row for the whole session (`*batch:<pid>`, see the test below), none per tenant.
    expect(h.rows).toBe(0);
    await first.lock.release();
    for (const t of some) await t.lock.release();
    await locks.close();
    expect(await held()).toEqual({ locks: 0, rows: 0 });
  });

  it('a tenant held elsewhere is skipped ahead; its own take waits for it and names the holder', async () => {
    // Another process holds the lock: a session of its own.
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('select pg_advisory_lock($1::int, hashtext($2))', [TENANT_LOCK_CLASSID, slugs[3]]);
      const locks = await TenantLockBatch.open(db, { command: 'test', wait: true, waitMs: 300 });
      locks.lookAhead(slugs.slice(0, 8), 8);
      const a = await locks.take(slugs[0]);
      const err = await locks.take(slugs[3]).catch((e: unknown) => e);
      expect(String((err as Error).message)).toContain(`tenant "${slugs[3]}" is locked`);
      await a.lock.release();
      await locks.close();
      await c.query('select pg_advisory_unlock($1::int, hashtext($2))', [TENANT_LOCK_CLASSID, slugs[3]]);
      expect(await held()).toEqual({ locks: 0, rows: 0 });
    } finally {
      await c.end();
    }
  });

  it('holds 300 tenants under ONE holder row; another operation on one of them fails or waits naming it, as before', async () => {
    const many = Array.from({ length: 300 }, (_, i) => `${prefix}-m${i}`);
    const command = `tlb-test-${process.pid}`;
    const rowsOf = async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const r = await c.query<{ n: number }>('select count(*)::int as n from tenant_locks where command = $1 or slug = any($2)', [
          command,
          many,
        ]);
        return r.rows[0].n;
      } finally {
        await c.end();
      }
    };
    // Another process: a catalog of its own, so a lock session of its own.
    const other = await openCatalog(loadConfig({ file: inject('fleetConfigFile') }));
    const locks = await TenantLockBatch.open(db, { command, wait: false });
    try {
      locks.lookAhead(many, 300);
      const mine = await locks.take(many[0]);
      await Promise.all(many.slice(1).map((s) => locks.take(s)));
      // A row per tenant before (300 inserts and 300 deletes); one for the session now.
      expect(await rowsOf()).toBe(1);
      expect(await describeTenantHolder(other, many[150])).toContain(`${command} by `);
      const refused = await lockTenant(other, many[150], { command: 'tenant suspend' }).catch((e: unknown) => e);
      expect(String((refused as Error).message)).toContain(`tenant "${many[150]}" is locked by ${command} by `);
      // --wait: waits until the batch releases that tenant, then holds it.
      const waiting = lockTenant(other, many[0], { command: 'tenant suspend', wait: true, waitMs: 10_000 });
      const settled = waiting.then(
        (l) => l,
        (e: unknown) => e,
      );
      await new Promise((r) => setTimeout(r, 300));
      await mine.lock.release();
      const got = await settled;
      expect((got as { slug?: string }).slug).toBe(many[0]);
      await (got as { release(): Promise<void> }).release();
    } finally {
      await locks.close();
      await other.destroy();
    }
    expect(await rowsOf()).toBe(0);
    expect(await describeTenantHolder(db, many[150])).toBeNull();
  });
});
