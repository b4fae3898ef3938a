import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockTenant } from '../../src/operations/tenant-lock.js';
import { json, migrateEnv, until, type MigrateEnv } from '../helpers/migrate-env.js';
import { sharedFleet } from '../helpers/shared-fleet.js';

/**
 * Issue 18 leftovers: every per-tenant operation owns one `operations` record through the engine
 * (tenant create, suspend, resume, credentials and delete wrote none); a killed one's record is
 * closed by the tenant's next command (its sweep) and listed by `doctor` meanwhile; a killed
 * `migrate repair` no longer stays `running` forever. On the shared fleet, in an environment of its own.
 */
const shared = sharedFleet();
let e: MigrateEnv;
beforeAll(async () => {
  e = await migrateEnv(shared, 'oprec');
});
afterAll(async () => {
  await e?.close();
});

const records = (slug: string) =>
  e.db.selectFrom('operations').select(['id', 'kind', 'status', 'progress']).where('tenant_slug', '=', slug).orderBy('id').execute();

/** Run the CLI paused at `fault` (or blocked), wait for `ready`, SIGKILL it. */
async function killWhen(args: string[], env: NodeJS.ProcessEnv, ready: () => Promise<unknown>): Promise<void> {
  let pid = 0;
  const run = e.cli(args, { env, onSpawn: (p) => (pid = p) });
  await until(ready, 60_000);
  expect(pid).toBeGreaterThan(0);
  process.kill(pid, 'SIGKILL');
  expect((await run).signal).toBe('SIGKILL');
}

describe('one operations record per operation', () => {
  it('tenant create, suspend, resume, credentials and delete each own one record, closed succeeded', async () => {
    const slug = 'orec-a';
    for (const args of [
      ['tenant', 'create', slug, '--model', 'schema', '--shard', 'us1'],
      ['tenant', 'suspend', slug],
      ['tenant', 'resume', slug],
      ['tenant', 'credentials', slug],
      ['tenant', 'delete', slug, '--yes'],
    ]) {
      const r = await e.cli([...args, '--json']);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    const kinds = (await records(slug)).map((o) => [o.kind, o.status]);
    // delete's final backup is its own record, nested in the delete's.
    expect(kinds).toEqual([
      ['create', 'succeeded'],
      ['suspend', 'succeeded'],
      ['resume', 'succeeded'],
      ['credentials', 'succeeded'],
      ['delete', 'succeeded'],
      ['backup', 'succeeded'],
    ]);
  });

  it('a killed tenant create leaves its record running: doctor lists it, the re-run closes it and finishes the tenant', async () => {
    const slug = 'orec-k';
    await killWhen(['tenant', 'create', slug, '--model', 'database', '--shard', 'us1'], { TENANTCTL_FAULT: 'create.prepared' }, async () =>
      (await records(slug)).some((o) => o.status === 'running'),
    );
    const [killed] = await records(slug);
    expect(killed).toMatchObject({ kind: 'create', status: 'running' });
    const doctor = json(await e.cli(['doctor', '--json'])).checks.find((c: { check: string }) => c.check === 'killed operations');
    expect(doctor.detail).toContain(`${slug}: create ${killed.id} still running`);
    const again = await e.cli(['tenant', 'create', slug, '--model', 'database', '--shard', 'us1', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const after = await records(slug);
    expect(after.map((o) => [o.kind, o.status])).toEqual([
      ['create', 'failed'],
      ['create', 'succeeded'],
    ]);
    expect((after[0].progress as { error?: string }).error).toBe(`create ${killed.id} of ${slug} was killed; closed`);
  });

  it('a killed bulk create: doctor lists the row it was creating, the same file again closes its record and creates every row', async () => {
    // The bulk path records each row with its tenant insert and locks rows in batches ahead: a
    // kill leaves the row being created `provisioning` with its record running, nothing else.
    const file = join(e.migrationsDir, '..', 'orec-bulk.csv');
    await writeFile(file, 'slug,model,shard\norec-b1,schema,us1\norec-b2,schema,us1\norec-b3,database,us1\n');
    const args = ['tenant', 'create', '--from-file', file, '--concurrency', '1'];
    await killWhen(args, { TENANTCTL_FAULT: 'create.migrated' }, async () =>
      (await records('orec-b1')).some((o) => o.status === 'running'),
    );
    const [killed] = await records('orec-b1');
    expect((await records('orec-b2')).length + (await records('orec-b3')).length).toBe(0);
    const doctor = json(await e.cli(['doctor', '--json'])).checks.find((c: { check: string }) => c.check === 'killed operations');
    expect(doctor.detail).toContain(`orec-b1: create ${killed.id} still running`);
    const again = await e.cli([...args, '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(json(again).results.map((r: { status: string; resumed?: boolean }) => [r.status, Boolean(r.resumed)])).toEqual([
      ['succeeded', true],
      ['succeeded', false],
      ['succeeded', false],
    ]);
    expect((await records('orec-b1')).map((o) => o.status)).toEqual(['failed', 'succeeded']);
    for (const slug of ['orec-b2', 'orec-b3']) expect((await records(slug)).map((o) => o.status)).toEqual(['succeeded']);
    const after = json(await e.cli(['doctor', '--json'])).checks.find((c: { check: string }) => c.check === 'killed operations');
    expect(after.detail).not.toContain('orec-b');
  });

  it('a killed migrate repair is closed (crashed) by the next repair instead of staying running', async () => {
    const slug = 'orec-r';
    await e.create([{ slug, model: 'schema', shard: 'us1' }]);
    const file = '0004_orec.sql';
    await e.addMigration(file, 'alter table workspaces add column orec int;\n');
    expect((await e.cli(['migrate', 'up', '--json'])).code).toBe(0);
    // An edit that changes nothing there: drift, repaired by re-baselining.
    await appendFile(join(e.migrationsDir, file), '-- reviewed\n');
    const repair = ['migrate', 'repair', '0004', '--tenant', slug, '--rebaseline', '--yes', '--json'];
    const repairs = () =>
      e.db.selectFrom('operations').select(['id', 'status']).where('kind', '=', 'migrate-repair').orderBy('id').execute();
    // Blocked behind the tenant's lock (it waits for it), killed there.
    const lock = await lockTenant(e.db, slug, { command: 'test' });
    try {
      await killWhen([...repair, '--wait'], {}, async () => (await repairs()).some((r) => r.status === 'running'));
    } finally {
      await lock.release();
    }
    const [killed] = await repairs();
    expect(killed.status).toBe('running');
    const r = await e.cli(repair);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(json(r).results[0]).toMatchObject({ tenant: slug, status: 'succeeded' });
    expect((await repairs()).map((x) => x.status)).toEqual(['crashed', 'succeeded']);
  });
});
