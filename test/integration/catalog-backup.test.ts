import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, inject, it } from 'vitest';
import { parseDocument } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { catalogBackupCheck } from '../../src/doctor/catalog-backup-age.js';
import { cli } from '../helpers/cli.js';
import { q } from '../helpers/deps.js';
import { json, migrateEnv, tenantDigests, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed } from '../helpers/seed.js';
import type { TestFleet } from '../helpers/test-fleet.js';
import { s3ServerForFile, useS3Backups } from '../helpers/s3-server.js';

/**
 * A catalog that can be lost (issue 21, item 4): `catalog backup` to the region's bucket, the
 * catalog "lost" (the config pointed at a new, empty catalog database, as after `dev reset`),
 * `catalog restore` into it, an encrypted archive restored with and without the catalog, and
 * `backup forget-key` erasing every copy of the key. Shared fleet, one s3rver in this process.
 */
const server = s3ServerForFile(['us-east-backups', 'eu-west-backups']);
const K = { TENANTCTL_BACKUP_KEY: Buffer.alloc(32, 3).toString('base64') };

/** A config like the env's with another (new, empty) catalog database: the catalog lost. */
async function freshCatalog(e: MigrateEnv, name: string): Promise<string> {
  const doc = parseDocument(await readFile(e.configFile, 'utf8'));
  doc.setIn(['catalog', 'database'], `cat_${name}`);
  const file = e.configFile.replace(/\.yaml$/, `.${name}.yaml`);
  await writeFile(file, doc.toString());
  return file;
}

describe('catalog backup and restore', () => {
  it('restores into an empty catalog only; an encrypted archive restores with the restored catalog and without any; forget-key erases every copy', async () => {
    const file = inject('fleetConfigFile');
    const e = await migrateEnv({ config: loadConfig({ file }), configFile: file } as TestFleet, 'catb');
    await useS3Backups(e, server().endpoint, { 'us-east': { encrypt: true }, 'eu-west': {} });
    await e.create([{ slug: 'cb-s', model: 'schema', shard: 'us1' }]);
    await seed(e, 'cb-s', 40, 'c');
    const before = await tenantDigests(e, 'cb-s');

    const warn = json(await e.cli(['doctor', '--json']));
    expect(warn.checks.find((c: any) => c.check === 'catalog backup')).toMatchObject({
      ok: true,
      warning: true,
      detail: /never been backed up/,
    });

    // A run in the history: the restored catalog rebuilds each target's last run from it.
    await e.addMigration('0009_cb_note.sql', 'alter table workspaces add column cb_note text;\n');
    const up = await e.cli(['migrate', 'up', '--json']);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const lastRuns = (database?: string) => {
      const u = new URL(e.config.catalogUrl);
      if (database) u.pathname = `/${database}`;
      return q(u.toString(), 'select target, run_id, status, cost_run_id, cost_ms from migrate_target_last order by target');
    };
    const lastBefore = await lastRuns();
    expect(lastBefore).toEqual([
      expect.objectContaining({ target: 'us1/schemas_catb/t_cb_s', status: 'succeeded', cost_ms: expect.any(Number) }),
    ]);

    const b = await e.cli(['backup', 'create', 'cb-s', '--json'], { env: K });
    expect(b.code, b.stdout + b.stderr).toBe(0);
    const id = json(b).results[0].backup;
    const cb = await e.cli(['catalog', 'backup', '--json']);
    expect(cb.code, cb.stdout + cb.stderr).toBe(0);
    expect(json(cb)).toMatchObject({ region: 'us-east', rows: { tenants: 1, backup_keys: 1 } });
    expect(json(cb).storage).toMatch(/^s3:\/\/us-east-backups\/tenantctl\/_catalog/);
    // doctor's check again, in-process (the whole doctor visits every shard): fresh, then a day later.
    const ok = await catalogBackupCheck(e.config);
    expect(ok).toMatchObject({ ok: true, detail: expect.stringContaining(json(cb).backup) });
    expect(ok.warning).toBeUndefined();
    const dayLater = await catalogBackupCheck(e.config, Date.now() + 25 * 3_600_000);
    expect(dayLater).toMatchObject({
      ok: true,
      warning: true,
      detail: expect.stringMatching(/is 2\d\.\d hours old: run tenantctl catalog backup/),
    });
    // Catalog backups are not tenant archives.
    expect(json(await e.cli(['backup', 'list', '--json'])).backups.map((x: any) => x.id)).toEqual([id]);

    // Lost catalog, no catalog backup loaded: the archive's own copy of its key restores it.
    const lost = await freshCatalog(e, 'catb_lost');
    const bare = await cli(['restore', id, '--as', 'cb-bare', '--json'], { config: lost, env: K });
    expect(bare.code, bare.stdout + bare.stderr).toBe(0);

    // Lost catalog, catalog backup loaded: tenants, events and keys are back.
    const fresh = await freshCatalog(e, 'catb_fresh');
    const noYes = await cli(['catalog', 'restore', '--json'], { config: fresh });
    expect(noYes.code).toBe(2);
    const cr = await cli(['catalog', 'restore', '--yes', '--json'], { config: fresh });
    expect(cr.code, cr.stdout + cr.stderr).toBe(0);
    expect(json(cr).backup).toBe(json(cb).backup);
    const shown = json(await cli(['tenant', 'show', 'cb-s', '--json'], { config: fresh }));
    expect(shown.tenant ?? shown).toMatchObject({ slug: 'cb-s', model: 'schema' });
    expect(await lastRuns('cat_catb_fresh')).toEqual(lastBefore);
    const again = await cli(['catalog', 'restore', '--yes', '--json'], { config: fresh });
    expect(again.code).toBe(2);
    expect(json(again).error).toMatchObject({ code: 'CATALOG_NOT_EMPTY', message: /the catalog is not empty \(tenants \(1\)/ });
    const r = await cli(['restore', id, '--as', 'cb-back', '--json'], { config: fresh, env: K });
    expect(r.code, r.stdout + r.stderr).toBe(0);

    // forget-key (on the restored catalog): the catalog's copy, the archive's copy and the catalog backup's copy.
    const f = await cli(['backup', 'forget-key', 'cb-s', '--yes', '--json'], { config: fresh });
    expect(f.code, f.stdout + f.stderr).toBe(0);
    expect(json(f)).toMatchObject({ keysDestroyed: 1, archiveCopiesErased: 1, catalogBackupsScrubbed: 1 });
    const destroyed = await cli(['restore', id, '--as', 'cb-x1', '--json'], { config: fresh, env: K });
    expect(destroyed.code).toBe(2);
    expect(json(destroyed).error.message).toMatch(/data key of tenant "cb-s" was destroyed/);
    // The catalog lost again and restored from the backup made before forget-key: still destroyed.
    const after = await freshCatalog(e, 'catb_after');
    expect((await cli(['catalog', 'restore', '--yes', '--json'], { config: after })).code).toBe(0);
    const x2 = await cli(['restore', id, '--as', 'cb-x2', '--json'], { config: after, env: K });
    expect(x2.code).toBe(2);
    expect(json(x2).error.message).toMatch(/data key of tenant "cb-s" was destroyed/);
    // And with no catalog at all: the archive no longer carries a key.
    const none = await freshCatalog(e, 'catb_none');
    const x3 = await cli(['restore', id, '--as', 'cb-x3', '--json'], { config: none, env: K });
    expect(x3.code).toBe(2);
    expect(json(x3).error).toMatchObject({ code: 'BACKUP_KEY', message: /no longer carries its copy/ });
    const v = await cli(['backup', 'verify', id, '--json'], { config: none, env: K });
    expect(v.code).toBe(2);
    expect(before).toBeTruthy();
  }, 240_000);
});
