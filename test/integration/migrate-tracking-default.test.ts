import { describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { loadMigrations } from '../../src/migrate/files.js';
import { TIMED_SQL, TRACKING } from '../../src/migrate/tracking.js';
import { migrateUp } from '../../src/migrate/up.js';
import { ownMigrateFleet, withPg } from '../helpers/migrate-env.js';
import { superuserUrl } from '../helpers/test-fleet.js';

/**
 * duration_ms of tenantctl's tracking table measures by default (tracking.ts TIMED_SQL), so the
 * rows a batched run writes leave it out of their text. A table an older tenantctl made, without
 * the default, gets it from the first run with work there; one the shard role may not alter keeps
 * its rows naming the duration in the text. Either way every row records how long its migration
 * took. The tracking table is one per database, so this file has a fleet of its own.
 */
const { env } = ownMigrateFleet();

describe('the tracking table measures duration_ms by default', () => {
  it('made so by this tenantctl; an older table gets the default; a table the role cannot alter still records durations', async () => {
    const e = await env('tdef');
    const slugs = ['tdef-a', 'tdef-b', 'tdef-c'];
    await e.create(slugs.map((slug) => ({ slug, model: 'schema' as const, shard: 'us1' })));
    const shard = e.config.shards.find((s) => s.name === 'us1')!;
    const url = databaseUrl(shard.url, shard.tenantDatabase);
    const role = decodeURIComponent(new URL(shard.url).username);
    const su = (sql: string) => withPg(superuserUrl(url), (c) => c.query(sql));
    const timed = async () => withPg(url, async (c) => (await c.query(`select ${TIMED_SQL} as timed`, [TRACKING])).rows[0].timed);
    // Every target ran `id` in a batch of two and its row measured the transaction, pg_sleep(0.05) included.
    const migratesMeasured = async (id: string, sql: string) => {
      await e.addMigration(`${id}.sql`, sql);
      expect((await up()).targets).toMatchObject({ total: 3, migrated: 3, failed: 0 });
      const rows = await withPg(url, (c) => c.query(`select duration_ms from ${TRACKING} where name = $1`, [id]));
      expect(rows.rows).toHaveLength(3);
      for (const r of rows.rows) expect(r.duration_ms).toBeGreaterThanOrEqual(50);
    };
    // Two targets per message: the batched path, whose rows are written as SQL text.
    const up = async () =>
      (
        await migrateUp(
          { config: e.config, db: e.db, fleet: e.fleet, migrations: await loadMigrations(e.migrationsDir) },
          { concurrency: 8, batchTargets: 2, onError: 'continue' },
        )
      ).doc;
    const slow = (col: string) => `select pg_sleep(0.05);\nalter table workspaces add column ${col} timestamptz;\n`;

    expect(await timed()).toBe(true);

    // An older tenantctl's table: no default. The run adds it and its rows leave the column out.
    await withPg(url, (c) => c.query(`alter table ${TRACKING} alter column duration_ms drop default`));
    expect(await timed()).toBe(false);
    await migratesMeasured('0004_slow', slow('slow_a'));
    expect(await timed()).toBe(true);

    // A table of another owner: the shard role may write it but not alter it. The run goes on, and
    // its rows name their duration in the text.
    await su(`create role tdef_owner nologin`);
    await su(`alter table ${TRACKING} owner to tdef_owner`);
    await su(`grant select, insert, update, delete on ${TRACKING} to ${role}`);
    await su(`alter table ${TRACKING} alter column duration_ms drop default`);
    try {
      await migratesMeasured('0005_slow', slow('slow_b'));
      expect(await timed()).toBe(false);
    } finally {
      await su(`alter table ${TRACKING} owner to ${role}`);
      await su(`drop role tdef_owner`);
    }
  });
});
