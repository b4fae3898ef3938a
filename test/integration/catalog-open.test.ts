import { randomUUID } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { openCatalog } from '../../src/catalog/open.js';
import { LATEST_CATALOG_MIGRATION } from '../../src/catalog/migrations.js';
import { TenantctlError } from '../../src/errors.js';
import { q } from '../helpers/deps.js';

/** The shared fleet's config with the catalog in a database of its own (created by the test). */
function configWithCatalog(dbName: string) {
  const config = loadConfig({ file: inject('fleetConfigFile') });
  const u = new URL(config.catalogUrl);
  u.pathname = `/${dbName}`;
  return { ...config, catalogUrl: u.toString() };
}

describe('openCatalog', () => {
  it('creates a missing catalog database and migrates it; a catalog behind the newest migration is migrated on open', async () => {
    const name = `cat_open_${randomUUID().slice(0, 8)}`;
    const config = configWithCatalog(name);
    const admin = new URL(config.catalogUrl);
    admin.pathname = '/postgres';
    try {
      let db = await openCatalog(config);
      const names = async () =>
        (await q<{ name: string }>(config.catalogUrl, 'select name from kysely_migration order by name')).map((r) => r.name);
      expect((await names()).at(-1)).toBe(LATEST_CATALOG_MIGRATION);
      await db.destroy();

      const runForeignKeys = () =>
        q(config.catalogUrl, `select conname from pg_constraint where conrelid = 'migrate_targets'::regclass and contype = 'f'`);
      // 0009 dropped the run's foreign key (its per-row check slowed the insert of a run's targets).
      expect(await runForeignKeys()).toEqual([]);

      // 0010: each target's newest finished run and newest cost, kept by a trigger from any
      // statement on the history, newest run first whatever order the rows come in.
      const ops = (
        await q<{ id: string }>(
          config.catalogUrl,
          `insert into operations (kind, status, holder) select 'migrate', 'succeeded', 'test' from generate_series(1, 4) returning id`,
        )
      ).map((r) => Number(r.id));
      const history = (rows: [number, string, string, string[], number | null][]) =>
        q(
          config.catalogUrl,
          `insert into migrate_targets (run_id, target, position, model, shard, database_name, schema_name, tenants, status, applied, duration_ms)
           select x.run_id, x.target, 0, 'schema', 'us1', 'db', 's', '{}', x.status, x.applied, x.ms
             from jsonb_to_recordset($1::jsonb) as x(run_id bigint, target text, status text, applied text[], ms int)`,
          [JSON.stringify(rows.map(([run_id, target, status, applied, ms]) => ({ run_id, target, status, applied, ms })))],
        );
      const last = () =>
        q(
          config.catalogUrl,
          'select target, run_id::int as run, status, cost_run_id::int as cost_run, cost_ms from migrate_target_last order by target',
        );
      const [r1, r2, r3, r4] = ops;
      await history([
        [r1, 'a', 'succeeded', ['m1'], 5],
        [r3, 'a', 'failed', [], 9],
        [r1, 'b', 'not_run', [], null],
        [r2, 'c', 'pending', [], null],
      ]);
      // A resumed older run (r2) finishing after a newer one (r3): its cost is newer, its outcome is not.
      await history([[r2, 'a', 'succeeded', ['m2'], 7]]);
      // A newer run that fails there keeps the last cost: a failure says nothing of what a migration costs.
      await history([[r4, 'a', 'failed', [], 2]]);
      await q(config.catalogUrl, `update migrate_targets set status = 'succeeded', duration_ms = 3 where target = 'c'`);
      const expected = [
        { target: 'a', run: r4, status: 'failed', cost_run: r2, cost_ms: 7 },
        // Nothing applied: no cost to expect of the next run.
        { target: 'c', run: r2, status: 'succeeded', cost_run: null, cost_ms: null },
      ];
      expect(await last()).toEqual(expected);

      // Undo the four newest migrations by hand: the next open must notice and run the migrator again.
      // (0011_migrate_partition_selector added the recording job's selectors to a CI matrix's split;
      // 0010_migrate_target_last replaced the history's target index with that table;
      // 0009_migrate_targets_unchecked dropped migrate_targets' foreign key to operations;
      // 0008_run_write_costs set two tables' fillfactor and a column's statistics)
      await q(config.catalogUrl, 'alter table migrate_partitions drop column selector');
      await q(config.catalogUrl, 'drop table migrate_target_last');
      await q(config.catalogUrl, 'drop function migrate_target_last_note() cascade');
      await q(config.catalogUrl, 'create index migrate_targets_target_idx on migrate_targets (target, run_id desc)');
      await q(
        config.catalogUrl,
        'alter table migrate_targets add constraint migrate_targets_run_id_fkey foreign key (run_id) references operations (id) on delete cascade',
      );
      await q(config.catalogUrl, 'alter table tenants reset (fillfactor)');
      await q(config.catalogUrl, 'alter table migrate_targets reset (fillfactor)');
      await q(config.catalogUrl, 'alter table migrate_targets alter column run_id set statistics -1');
      expect(LATEST_CATALOG_MIGRATION).toBe('0011_migrate_partition_selector');
      await q(config.catalogUrl, 'delete from kysely_migration where name in ($1, $2, $3, $4)', [
        LATEST_CATALOG_MIGRATION,
        '0010_migrate_target_last',
        '0009_migrate_targets_unchecked',
        '0008_run_write_costs',
      ]);
      db = await openCatalog(config, { migrate: false });
      expect((await names()).at(-1)).not.toBe(LATEST_CATALOG_MIGRATION);
      await db.destroy();
      db = await openCatalog(config);
      expect((await names()).at(-1)).toBe(LATEST_CATALOG_MIGRATION);
      expect(
        await q(
          config.catalogUrl,
          `select relname, reloptions from pg_class where relname in ('tenants', 'migrate_targets') order by relname`,
        ),
      ).toEqual([
        { relname: 'migrate_targets', reloptions: ['fillfactor=40'] },
        { relname: 'tenants', reloptions: ['fillfactor=50'] },
      ]);
      expect(
        await q(
          config.catalogUrl,
          `select attstattarget from pg_attribute where attrelid = 'migrate_targets'::regclass and attname = 'run_id'`,
        ),
      ).toEqual([{ attstattarget: 10 }]);
      expect(await runForeignKeys()).toEqual([]);
      // Rebuilt from the history kept, and the history's target index gone.
      expect(await last()).toEqual(expected);
      expect(await q(config.catalogUrl, `select 1 from pg_indexes where indexname = 'migrate_targets_target_idx'`)).toEqual([]);
      expect(
        await q(config.catalogUrl, `select 1 from pg_attribute where attrelid = 'migrate_partitions'::regclass and attname = 'selector'`),
      ).toHaveLength(1);
      await db.destroy();

      // A catalog a newer tenantctl migrated: refused by name, not called corrupted, and left alone.
      await q(config.catalogUrl, `insert into kysely_migration (name, timestamp) values ('9999_from_a_newer_tenantctl', now())`);
      const newer = await openCatalog(config).catch((e: unknown) => e);
      expect(newer).toBeInstanceOf(TenantctlError);
      expect((newer as TenantctlError).code).toBe('CATALOG_NEWER');
      expect((newer as TenantctlError).exitCode).toBe(2);
      expect((newer as Error).message).toContain('9999_from_a_newer_tenantctl');
      expect((newer as Error).message).toContain(LATEST_CATALOG_MIGRATION);
      expect((await names()).at(-1)).toBe('9999_from_a_newer_tenantctl');
      await q(config.catalogUrl, `delete from kysely_migration where name = '9999_from_a_newer_tenantctl'`);
      db = await openCatalog(config);
      await db.destroy();
    } finally {
      await q(admin.toString(), `drop database if exists ${name} with (force)`);
    }
  });

  it('an unreachable catalog is UNREACHABLE with the place named and the password redacted', async () => {
    const config = configWithCatalog('tenantctl_catalog');
    const u = new URL(config.catalogUrl);
    u.port = '1';
    const err = await openCatalog({ ...config, catalogUrl: u.toString() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TenantctlError);
    expect((err as TenantctlError).code).toBe('UNREACHABLE');
    expect((err as Error).message).toContain(':1/tenantctl_catalog');
    expect((err as Error).message).not.toContain(decodeURIComponent(u.password));
  });
});
