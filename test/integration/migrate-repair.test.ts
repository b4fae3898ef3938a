import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, migrateEnv, type MigrateEnv } from '../helpers/migrate-env.js';
import { sharedFleet } from '../helpers/shared-fleet.js';

/**
 * A migration file edited after it ran (issue 18, item 6): `migrate up` (plain and
 * --only-failed) refuses to apply the edited version beside the old one, naming the file, the
 * targets that ran the old one and the repair command; `migrate repair --reapply | --rebaseline`
 * makes them one version (recorded, shown by `migrate status`); `migrate status` flags targets
 * ahead of the folder. On the shared fleet, in an environment of its own.
 */
const shared = sharedFleet();
let e: MigrateEnv;
const FILE = '0004_flag.sql';

beforeAll(async () => {
  e = await migrateEnv(shared, 'rp');
  await e.create([
    { slug: 'rp-a', model: 'schema', shard: 'us1' },
    { slug: 'rp-b', model: 'schema', shard: 'us1' },
    { slug: 'rp-c', model: 'schema', shard: 'us1' },
    { slug: 'rp-p', model: 'pool', shard: 'us1' },
  ]);
});
afterAll(async () => {
  await e?.close();
});

const checksums = async (name: string) =>
  Object.fromEntries(
    (await e.q('us1', 'schemas_rp', 'select target_schema, checksum from tenantctl.schema_migrations where name = $1', [name])).map((r) => [
      r.target_schema,
      r.checksum,
    ]),
  );
const columns = async (schema: string) =>
  (
    await e.q(
      'us1',
      'schemas_rp',
      `select column_name from information_schema.columns where table_schema = $1 and table_name = 'workspaces' and column_name like 'flag%' order by 1`,
      [schema],
    )
  ).map((r) => r.column_name);

describe('an edited migration file', () => {
  it('migrate up and --only-failed refuse the edited version beside the old one; repair --reapply makes one version; status shows drift, then the repair', async () => {
    // rp-c already has the column: 0004 fails there and runs everywhere else.
    await e.q('us1', 'schemas_rp', 'alter table t_rp_c.workspaces add column flag int');
    await e.addMigration(FILE, 'alter table workspaces add column flag int;\n');
    const first = await e.cli(['migrate', 'up', '--on-error', 'continue', '--json']);
    expect(first.code, first.stderr).toBe(1);
    const run = json(first).run as number;
    expect(json(first).results.find((r: any) => r.tenant === 'rp-c')).toMatchObject({ status: 'failed' });

    // The file is "fixed" after it ran on three targets.
    await writeFile(
      join(e.migrationsDir, FILE),
      'alter table workspaces add column if not exists flag int;\nalter table workspaces add column if not exists flag2 int;\n',
    );
    for (const args of [
      ['migrate', 'up', '--only-failed', String(run), '--json'],
      ['migrate', 'up', '--json'],
    ]) {
      const r = await e.cli(args);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      const err = json(r).error;
      expect(err.code).toBe('DRIFT');
      expect(err.message).toContain(FILE);
      for (const t of ['t_rp_a', 't_rp_b', 'us1/pool_rp/app']) expect(err.message).toContain(t);
      expect(err.message).toMatch(/would apply the edited one to 1 other target\(s\) \(us1\/schemas_rp\/t_rp_c/);
      expect(err.hint).toContain('tenantctl migrate repair 0004_flag --tenant');
      expect(err.hint).toMatch(/--reapply|--rebaseline/);
    }
    expect(await checksums('0004_flag')).not.toHaveProperty('t_rp_c');
    expect(await columns('t_rp_c')).toEqual(['flag']);

    const st = await e.cli(['migrate', 'status', '--json']);
    expect(st.code).toBe(1);
    expect(json(st).summary).toMatchObject({ drift: 3 });

    // Dry run: names the targets, changes nothing.
    const dry = await e.cli(['migrate', 'repair', '0004', '--tenant', 'rp-a,rp-b,rp-c,rp-p', '--reapply', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const dryRows = json(dry).results;
    expect(dryRows.filter((r: any) => /^dry run: would re-apply/.test(r.reason)).map((r: any) => r.tenant)).toEqual([
      'rp-a',
      'rp-b',
      'rp-p',
    ]);
    expect(dryRows.find((r: any) => r.tenant === 'rp-c')).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/not applied here/),
    });
    expect(await columns('t_rp_a')).toEqual(['flag']);

    const repair = await e.cli(['migrate', 'repair', '0004_flag', '--tenant', 'rp-a,rp-b,rp-p', '--reapply', '--yes', '--json']);
    expect(repair.code, repair.stdout + repair.stderr).toBe(0);
    const doc = json(repair);
    expect(doc.results.map((r: any) => [r.tenant, r.status])).toEqual([
      ['rp-a', 'succeeded'],
      ['rp-b', 'succeeded'],
      ['rp-p', 'succeeded'],
    ]);
    expect(doc.results[0].appliedChecksum).not.toBe(doc.results[0].fileChecksum);
    expect(await columns('t_rp_a')).toEqual(['flag', 'flag2']);
    const fileSum = doc.results[0].fileChecksum;
    expect(await checksums('0004_flag')).toEqual({ t_rp_a: fileSum, t_rp_b: fileSum });
    const events = await e.db
      .selectFrom('events')
      .selectAll()
      .where('tenant_slug', '=', 'rp-a')
      .where('action', '=', 'migration re-applied')
      .execute();
    expect(events).toHaveLength(1);
    expect(events[0].details).toMatchObject({ run: doc.run, migration: '0004_flag', to: fileSum });

    // One version again: the failed target gets the file as it is now.
    const retry = await e.cli(['migrate', 'up', '--only-failed', String(run), '--json']);
    expect(retry.code, retry.stdout + retry.stderr).toBe(0);
    expect(json(retry).results.find((r: any) => r.tenant === 'rp-c')).toMatchObject({ status: 'succeeded', applied: ['0004_flag'] });
    expect(await columns('t_rp_c')).toEqual(['flag', 'flag2']);

    const after = await e.cli(['migrate', 'status', '--json']);
    expect(after.code, after.stdout).toBe(0);
    expect(json(after).repairs[0]).toMatchObject({
      run: doc.run,
      migration: '0004_flag',
      mode: 'reapply',
      targets: 3,
      repaired: 3,
      status: 'succeeded',
    });
    expect((await e.cli(['migrate', 'status'])).stdout).toMatch(/repair run \d+ .*re-applied 0004_flag on 3 of 3 target/);
  });

  it('--rebaseline records the checksum without running the file; a target ahead of the folder is flagged (exit 1); bad usage is exit 2', async () => {
    expect((await e.cli(['migrate', 'repair', '0004', '--tenant', 'rp-a', '--json'])).code).toBe(2);
    expect(json(await e.cli(['migrate', 'repair', '0004', '--tenant', 'rp-a', '--rebaseline', '--json'])).error.code).toBe('NEEDS_YES');
    expect(json(await e.cli(['migrate', 'repair', '0099', '--tenant', 'rp-a', '--rebaseline', '--yes', '--json'])).error.code).toBe(
      'BAD_INPUT',
    );
    expect(json(await e.cli(['migrate', 'repair', '0004', '--rebaseline', '--yes', '--json'])).error.code).toBe('USAGE');

    await appendFile(join(e.migrationsDir, FILE), '-- a comment: the same change\n');
    // migrate up on the edited file, which every selected target ran: refused before anything
    // runs (exit 2, no run recorded), naming the targets and the repair; no retry is offered.
    const runsBefore = (await e.runs()).length;
    const drifted = await e.cli(['migrate', 'up']);
    expect(drifted.code, drifted.stdout + drifted.stderr).toBe(2);
    expect(drifted.stderr).toMatch(/0004_flag\.sql was edited after it was applied: 4 selected target\(s\) ran the old version/);
    expect(drifted.stderr).toMatch(/tenantctl migrate repair 0004_flag --tenant \S+ --reapply --yes .*--rebaseline --yes/);
    expect(drifted.stdout + drifted.stderr).not.toMatch(/retry the failures/);
    expect((await e.runs()).length).toBe(runsBefore);
    const r = await e.cli(['migrate', 'repair', '0004', '--tenant', 'rp-a,rp-b,rp-c,rp-p', '--rebaseline', '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    expect(doc.summary).toMatchObject({ succeeded: 4, failed: 0 });
    const sum = doc.results[0].fileChecksum;
    expect(await checksums('0004_flag')).toEqual({ t_rp_a: sum, t_rp_b: sum, t_rp_c: sum });
    expect((await e.cli(['migrate', 'status'])).code).toBe(0);

    // Ahead: a migration applied there that has no file here.
    await e.q(
      'us1',
      'schemas_rp',
      `insert into tenantctl.schema_migrations (target_schema, name, checksum) values ('t_rp_b', '0099_future', 'x')`,
    );
    const st = await e.cli(['migrate', 'status', '--json']);
    expect(st.code).toBe(1);
    const d = json(st);
    expect(d.summary).toMatchObject({ ahead: 1 });
    expect(d.targets.find((t: any) => t.tenants[0] === 'rp-b')).toMatchObject({ condition: 'ahead', unknown: ['0099_future'] });
    expect((await e.cli(['migrate', 'status'])).stdout).toMatch(/1 ahead of these files/);
    await e.q('us1', 'schemas_rp', `delete from tenantctl.schema_migrations where name = '0099_future'`);
  });
});
