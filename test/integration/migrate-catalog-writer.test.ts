import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CatalogWriter } from '../../src/migrate/catalog-writer.js';
import { insertTargets } from '../../src/migrate/target-rows.js';
import { testDeps } from '../helpers/deps.js';

/**
 * The catalog writer of `migrate up` on the shared fleet's catalog: targets that finish while a
 * write is in flight wait for the batch delay instead of following in a statement of their own.
 * Records of no run (run id null) touch no row; the statements are what is counted.
 */
let deps: Awaited<ReturnType<typeof testDeps>>;

beforeAll(async () => {
  deps = await testDeps();
});

afterAll(async () => {
  await deps.close();
});

/** A migrate run's operations row (its targets' rows reference it). */
function newRun(): Promise<{ id: number }> {
  return deps.db
    .insertInto('operations')
    .values({ kind: 'migrate', status: 'running', tenant_slug: null, holder: 'test', args: '{}', progress: null })
    .returning('id')
    .executeTakeFirstOrThrow();
}

describe('CatalogWriter', () => {
  it('writes a steady stream of finished targets in a few large statements, and all of them by close()', async () => {
    let statements = 0;
    const counter: KyselyPlugin = {
      transformQuery: (a) => {
        statements++;
        return a.node;
      },
      transformResult: async (a) => a.result,
    };
    const batchMs = 50;
    const writer = new CatalogWriter(deps.db.withPlugin(counter), null, 'test', () => ({}), 60_000, batchMs);
    const t0 = Date.now();
    // Targets finishing as a fan-out over small targets finishes them: a few every millisecond.
    for (let i = 0; i < 1500; i++) {
      writer.push({ target: `w/x/t${i}`, status: 'succeeded', applied: ['0004_x'], durationMs: 1 });
      if (i % 5 === 4) await sleep(1);
    }
    await writer.close();
    const elapsed = Date.now() - t0;
    expect(writer.error).toBeNull();
    expect(writer.written).toBe(1500);
    // One statement per batch delay (plus a full batch now and then); the old loop wrote whatever
    // had queued during the previous write at once, a statement every few milliseconds.
    expect(statements).toBeLessThanOrEqual(Math.ceil(elapsed / batchMs) + 3);
  });
  it('writes each column as it was pushed: odd text, nulls, timestamps, numbers, arrays and JSON intact', async () => {
    const run = await newRun();
    try {
      const odd = 'q"b\\s,{x} NULL\n\u00e9\u2603 \'';
      const target = (n: string) => ({ target: `cw/x/${n}`, model: 'schema', shard: 'cw', database_name: 'x', schema_name: n });
      await insertTargets(deps.db, run.id, [
        { ...target('a'), position: 0, tenants: [] },
        { ...target('b'), position: 1, tenants: [] },
        { ...target('c'), position: 2, tenants: [] },
      ]);
      const writer = new CatalogWriter(deps.db, run.id, 'test', () => ({ done: 2 }), 60_000, 0);
      const startedAt = new Date('2026-01-02T03:04:05.678Z');
      writer.push({
        target: 'cw/x/a',
        status: 'succeeded',
        applied: ['0001_a', odd, ''],
        startedAt,
        durationMs: 12.6,
        event: {
          action: 'migrate.target',
          result: 'ok',
          details: { target: 'cw/x/a', odd, n: 1.5, none: null },
          tenants: [`cw-${odd}`, 'NULL'],
        },
      });
      writer.push({ target: 'cw/x/b', status: 'failed', error: { message: odd, code: '42P01', nested: [null, 2] } });
      // No status: no row of its own is written (a target known up to date before the run).
      writer.push({ target: 'cw/x/c', version: null });
      await writer.close();
      expect(writer.error).toBeNull();
      const rows = await deps.db
        .selectFrom('migrate_targets')
        .select(['target', 'status', 'applied', 'error', 'started_at', 'finished_at', 'duration_ms'])
        .where('run_id', '=', run.id)
        .orderBy('position')
        .execute();
      expect(rows[0]).toMatchObject({ status: 'succeeded', applied: ['0001_a', odd, ''], error: null, duration_ms: 13 });
      expect(rows[0].started_at?.toISOString()).toBe(startedAt.toISOString());
      expect(rows[0].finished_at).not.toBeNull();
      expect(rows[1]).toMatchObject({
        status: 'failed',
        applied: [],
        error: { message: odd, code: '42P01', nested: [null, 2] },
        started_at: null,
        duration_ms: null,
      });
      expect(rows[2]).toMatchObject({ status: 'pending', finished_at: null });
      const events = await sql<{ tenant_slug: string; action: string; result: string; details: Record<string, unknown> }>`
        select tenant_slug, action, result, details from events where details->>'run' = ${String(run.id)} order by id`.execute(deps.db);
      expect(events.rows).toEqual([
        {
          tenant_slug: `cw-${odd}`,
          action: 'migrate.target',
          result: 'ok',
          details: { target: 'cw/x/a', odd, n: 1.5, none: null, run: Number(run.id) },
        },
        {
          tenant_slug: 'NULL',
          action: 'migrate.target',
          result: 'ok',
          details: { target: 'cw/x/a', odd, n: 1.5, none: null, run: Number(run.id) },
        },
      ]);
    } finally {
      // The run's target rows have no foreign key to cascade (catalog migration 0009).
      await deps.db.deleteFrom('migrate_targets').where('run_id', '=', run.id).execute();
      await deps.db.deleteFrom('operations').where('id', '=', run.id).execute();
    }
  });
});

describe('CatalogWriter on the pages the rows are on', () => {
  it("records 600 targets' outcomes and their tenants' schema_version without moving a row off its page (no index entry written)", async () => {
    const run = await newRun();
    const prefix = `hot-${run.id}-`;
    const slugs = Array.from({ length: 600 }, (_, i) => `${prefix}${i}`);
    try {
      // Catalog rows only (no placement): the writer reads nothing else of a tenant.
      await sql`insert into tenants (slug, key, name, tier, model, region, shard, database_name, schema_name, status, schema_version)
                select s, s, s, 'standard', 'schema', 'us-east', 'hot', 'x', s, 'active', '0001_a' from unnest(${slugs}::text[]) as s`.execute(
        deps.db,
      );
      await insertTargets(
        deps.db,
        run.id,
        slugs.map((s, i) => ({
          target: `hot/x/${s}`,
          position: i,
          model: 'schema',
          shard: 'hot',
          database_name: 'x',
          schema_name: s,
          tenants: [s],
        })),
      );
      // The page (block) of each row: an update that stays on its page (HOT) writes no index entry.
      const pages = async () => {
        const r = await sql<{ k: string; page: string }>`
          select target as k, (ctid::text::point)[0]::text as page from migrate_targets where run_id = ${run.id}::bigint
          union all select slug, (ctid::text::point)[0]::text from tenants where slug = any(${slugs}::text[])`.execute(deps.db);
        return new Map(r.rows.map((x) => [x.k, x.page]));
      };
      const before = await pages();
      const writer = new CatalogWriter(deps.db, run.id, 'test', () => ({}), 60_000, 0);
      slugs.forEach((s) =>
        writer.push({ target: `hot/x/${s}`, status: 'succeeded', applied: ['0002_b'], durationMs: 3, version: '0002_b', slugs: [s] }),
      );
      await writer.close();
      expect(writer.error).toBeNull();
      const after = await pages();
      const done = await sql<{ n: number; v: number }>`
        select (select count(*)::int from migrate_targets where run_id = ${run.id}::bigint and status = 'succeeded') as n,
               (select count(*)::int from tenants where slug = any(${slugs}::text[]) and schema_version = '0002_b') as v`.execute(deps.db);
      expect(done.rows[0]).toEqual({ n: 600, v: 600 });
      // Pages packed full (the old catalog) moved nearly every row: 1,200 rows, each a new entry in
      // every index of its table.
      const moved = [...before].filter(([k, page]) => after.get(k) !== page).length;
      expect(before.size).toBe(1200);
      expect(moved).toBeLessThanOrEqual(12);
    } finally {
      // The run's target rows have no foreign key to cascade (catalog migration 0009).
      await deps.db.deleteFrom('migrate_targets').where('run_id', '=', run.id).execute();
      await deps.db.deleteFrom('operations').where('id', '=', run.id).execute();
      await deps.db.deleteFrom('tenants').where('slug', 'in', slugs).execute();
    }
  });
});

describe('insertTargets', () => {
  it("refreshes run_id's statistics after a large run's rows, so the planner knows the run's size before the catalog writer's first batch", async () => {
    const run = await deps.db
      .insertInto('operations')
      .values({
        kind: 'migrate',
        status: 'succeeded',
        tenant_slug: null,
        holder: 'test',
        args: '{}',
        progress: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    try {
      const rows = Array.from({ length: 600 }, (_, i) => ({
        target: `st/x/t${i}`,
        position: i,
        model: 'schema',
        shard: 'st',
        database_name: 'x',
        schema_name: `t${i}`,
        tenants: [`st${i}`],
      }));
      // Any text survives as a tenant (the column arrays are unnested side by side).
      rows[1].tenants = ['a"b\\c', 'x,y', '{}'];
      // The statistics are refreshed after the insert, and the run's writer waits for them (up-run.ts).
      await (await insertTargets(deps.db, run.id, rows)).analyzed;
      const back = await deps.db
        .selectFrom('migrate_targets')
        .select(['target', 'position', 'tenants'])
        .where('run_id', '=', run.id)
        .orderBy('position')
        .execute();
      expect(back).toHaveLength(600);
      expect(back[1]).toMatchObject({ target: 'st/x/t1', position: 1, tenants: ['a"b\\c', 'x,y', '{}'] });
      expect(back[599]).toMatchObject({ target: 'st/x/t599', position: 599, tenants: ['st599'] });
      // The planner knows the run's rows at once (not autovacuum's later pass): it sizes the
      // catalog writer's plan by this estimate (an index scan of the run's targets by run_id alone,
      // filtered by target, per batch, when it believes the run has one row).
      const plan = await sql<{ 'QUERY PLAN': string }>`explain select * from migrate_targets where run_id = ${run.id}::bigint`.execute(
        deps.db,
      );
      const estimate = Number(/rows=(\d+)/.exec(plan.rows[0]['QUERY PLAN'])?.[1]);
      expect(estimate).toBeGreaterThanOrEqual(500);
    } finally {
      // The run's target rows have no foreign key to cascade (catalog migration 0009).
      await deps.db.deleteFrom('migrate_targets').where('run_id', '=', run.id).execute();
      await deps.db.deleteFrom('operations').where('id', '=', run.id).execute();
    }
  });
});
