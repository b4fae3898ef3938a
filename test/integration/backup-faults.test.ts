import { cp, mkdtemp, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { json, ownMigrateFleet, sleep, until, type MigrateEnv } from '../helpers/migrate-env.js';
import { shardDbUrl } from '../helpers/deps.js';
import { superuserUrl } from '../helpers/test-fleet.js';
import { loadConfig } from '../../src/config/load.js';
import { storageFor } from '../../src/backup/regions.js';
import { sealManifest } from '../../src/backup/manifest.js';
import { lockTenant } from '../../src/operations/tenant-lock.js';
import { seed, tenant } from '../helpers/seed.js';

/**
 * Issue 18's backup faults: a busy tenant is exit 3 (LOCKED) for backup as for every other
 * command, and a forged manifest (a file name outside the archive's folder; an edited manifest
 * of an encrypted archive) is refused by verify and restore.
 */
const { env } = ownMigrateFleet();

async function archiveDir(e: MigrateEnv, id: string): Promise<string> {
  const st = storageFor(e.config, 'us-east');
  return join(st.location, id.slice(0, id.indexOf('.')), id);
}

async function backupOf(e: MigrateEnv, slug: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await e.cli(['backup', 'create', slug, '--json'], { env: extraEnv });
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return json(r).results[0].backup;
}

describe('a busy tenant', () => {
  it('backup create of a tenant another command holds is exit 3 with a LOCKED row naming the holder, alone and in a fan-out; --wait waits', async () => {
    const e = await env('busy');
    await e.create([
      { slug: 'busy-a', model: 'schema', shard: 'us1' },
      { slug: 'busy-b', model: 'pool', shard: 'us1' },
    ]);
    const lock = await lockTenant(e.db, 'busy-a', { command: 'move' });
    let released = false;
    try {
      const one = await e.cli(['backup', 'create', 'busy-a', '--json']);
      expect(one.code, one.stderr + one.stdout).toBe(3);
      const row = json(one).results[0];
      expect(row.status).toBe('failed');
      expect(row.error.code).toBe('LOCKED');
      expect(row.error.message).toMatch(/tenant "busy-a" is locked by move by \S+.*pid \d+/);

      const all = await e.cli(['backup', 'create', '--all', '--json']);
      expect(all.code, all.stderr + all.stdout).toBe(3);
      const rows = json(all).results;
      expect(rows.find((r: any) => r.tenant === 'busy-b').status).toBe('succeeded');
      expect(rows.find((r: any) => r.tenant === 'busy-a').error.code).toBe('LOCKED');

      // --wait: it says it waits for the holder (instead of exit 3), then the holder lets go.
      let saidWaiting: () => void = () => undefined;
      const said = new Promise<void>((resolve) => (saidWaiting = resolve));
      const waiting = e.cli(['backup', 'create', 'busy-a', '--wait', '--json'], {
        onStderr: (soFar) => {
          if (/waiting for the tenant lock: move by /.test(soFar)) saidWaiting();
        },
      });
      expect(await Promise.race([said.then(() => 'waiting'), waiting.then(() => 'exited')])).toBe('waiting');
      released = true;
      await lock.release();
      const w = await waiting;
      expect(w.code, w.stderr + w.stdout).toBe(0);
      expect(json(w).results[0].status).toBe('succeeded');
    } finally {
      if (!released) await lock.release();
    }
  });

  it('backup list names an archive folder without its manifest as such, not as a raw ENOENT', async () => {
    const e = await env('nomf');
    await e.create([{ slug: 'nomf-a', model: 'pool', shard: 'us1' }]);
    const id = await backupOf(e, 'nomf-a');
    await rename(join(await archiveDir(e, id), 'manifest.json'), join(await archiveDir(e, id), 'manifest.json.away'));
    const r = await e.cli(['backup', 'list', 'nomf-a', '--json']);
    const row = json(r).backups.find((b: { id: string }) => b.id === id);
    expect(row.problem).toBe('manifest.json is missing: not a whole archive (restore refuses it; remove the folder)');
  });

  it('backup create --all: a tenant deleted during the run is skipped as gone, not a failure of the run (exit 0)', async () => {
    const e = await env('gone');
    await e.create([
      { slug: 'gone-a', model: 'schema', shard: 'us1' },
      { slug: 'gone-b', model: 'pool', shard: 'us1' },
    ]);
    // gone-a is held, so the run (one at a time) waits on it while gone-b is deleted, then goes on.
    const lock = await lockTenant(e.db, 'gone-a', { command: 'move' });
    let saidWaiting: () => void = () => undefined;
    const said = new Promise<void>((resolve) => (saidWaiting = resolve));
    const run = e.cli(['backup', 'create', '--all', '--tenant', 'gone-a,gone-b', '--concurrency', '1', '--wait', '--json'], {
      onStderr: (soFar) => {
        if (/waiting for the tenant lock/.test(soFar)) saidWaiting();
      },
    });
    try {
      await said;
      const d = await e.cli(['tenant', 'delete', 'gone-b', '--yes', '--skip-backup']);
      expect(d.code, d.stderr).toBe(0);
    } finally {
      await lock.release();
    }
    const r = await run;
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const rows = json(r).results;
    expect(rows.find((x: any) => x.tenant === 'gone-a').status).toBe('succeeded');
    expect(rows.find((x: any) => x.tenant === 'gone-b')).toMatchObject({
      status: 'skipped',
      reason: 'gone: the tenant was deleted during the run',
    });
  });
});

describe('forged manifests', () => {
  it("an archive of one tenant filed, id edited and re-checksummed, under another's is refused (never restored over the tenant it names)", async () => {
    const e = await env('misfiled');
    await e.create([
      { slug: 'mf-a', model: 'pool', shard: 'us1' },
      { slug: 'mf-s', model: 'schema', shard: 'us1' },
    ]);
    await seed(e, 'mf-s', 20, 's');
    const id = await backupOf(e, 'mf-s');
    const forged = `mf-a${id.slice(id.indexOf('.'))}`;
    const from = await archiveDir(e, id);
    const to = await archiveDir(e, forged);
    await cp(from, to, { recursive: true });
    const { checksum: _c, ...body } = JSON.parse(await readFile(join(to, 'manifest.json'), 'utf8'));
    body.id = forged;
    await writeFile(join(to, 'manifest.json'), JSON.stringify(sealManifest(body), null, 2));
    for (const args of [
      ['backup', 'verify', forged, '--json'],
      ['restore', forged, '--replace', '--yes', '--json'],
    ]) {
      const r = await e.cli(args);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(json(r).error).toMatchObject({
        code: 'BAD_ARCHIVE',
        message: `backup ${forged} is filed under tenant mf-a but its manifest is of tenant mf-s`,
      });
    }
    // mf-s's backup over another tenant by --as: refused, mf-a's data untouched; the hint of a
    // plain --as onto it does not offer --replace.
    const before = await e.q('us1', (await tenant(e, 'mf-a'))!.database_name, 'select count(*)::int as n from app.tasks');
    const over = await e.cli(['restore', id, '--as', 'mf-a', '--replace', '--yes', '--json']);
    expect(over.code, over.stdout + over.stderr).toBe(2);
    expect(json(over).error).toMatchObject({
      code: 'USAGE',
      message: `backup ${id} is of tenant "mf-s": --replace restores a backup over its own tenant only, not over "mf-a"`,
    });
    const beside = await e.cli(['restore', id, '--as', 'mf-a', '--json']);
    expect(beside.code).toBe(2);
    expect(json(beside).error.hint).not.toMatch(/--replace/);
    expect(await e.q('us1', (await tenant(e, 'mf-a'))!.database_name, 'select count(*)::int as n from app.tasks')).toEqual(before);
    // No safety backup was taken: only the forged folder is filed under mf-a.
    expect(json(await e.cli(['backup', 'list', 'mf-a', '--json'])).backups.map((b: { id: string }) => b.id)).toEqual([forged]);
  });

  it('a file name outside the archive folder (.., absolute) is refused by verify and restore, naming the entry', async () => {
    const e = await env('forge');
    await e.create([{ slug: 'forge-t', model: 'schema', shard: 'us1' }]);
    await seed(e, 'forge-t', 40, 'f');
    const id = await backupOf(e, 'forge-t');
    const dir = await archiveDir(e, id);
    const text = await readFile(join(dir, 'manifest.json'), 'utf8');
    const m = JSON.parse(text);
    const i = m.tables.findIndex((t: any) => t.table === 'tasks');
    // The data file moved outside the archive, and the manifest pointing at it, checksum recomputed.
    const outside = await mkdtemp(join(tmpdir(), 'forged-'));
    await rename(join(dir, m.tables[i].file), join(outside, 'outside.copy.br'));
    const { checksum: _c, ...body } = m;
    for (const file of [relative(dir, join(outside, 'outside.copy.br')), join(outside, 'outside.copy.br')]) {
      body.tables[i].file = file;
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(sealManifest(body), null, 2));
      for (const args of [
        ['backup', 'verify', id, '--json'],
        ['restore', id, '--as', 'forge-copy', '--json'],
      ]) {
        const r = await e.cli(args);
        expect(r.code, r.stdout + r.stderr).toBe(2);
        expect(json(r).error.code).toBe('BAD_ARCHIVE');
        expect(json(r).error.message).toContain(`manifest entry tables[${i}].file (tasks) names ${JSON.stringify(file)}`);
      }
    }
    const copy = await e.cli(['tenant', 'show', 'forge-copy', '--json']);
    expect(copy.code).toBe(2);
  });

  it("an encrypted archive's manifest edited and re-checksummed is refused (MAC); the untouched one verifies and restores", async () => {
    const e = await env('mac');
    const doc = parseDocument(await readFile(e.configFile, 'utf8'));
    doc.setIn(['regions', 'us-east', 'backup', 'encrypt'], true);
    await writeFile(e.configFile, doc.toString());
    e.config = loadConfig({ file: e.configFile });
    const K = { TENANTCTL_BACKUP_KEY: Buffer.alloc(32, 9).toString('base64') };
    await e.create([{ slug: 'mac-t', model: 'schema', shard: 'us1' }]);
    await seed(e, 'mac-t', 30, 'm');
    const id = await backupOf(e, 'mac-t', K);
    const file = join(await archiveDir(e, id), 'manifest.json');
    const text = await readFile(file, 'utf8');
    const m = JSON.parse(text);
    expect(m.format).toBe(6);
    expect(m.mac).toMatch(/^[0-9a-f]{64}$/);
    const { checksum: _c, ...body } = m;
    await writeFile(file, JSON.stringify(sealManifest({ ...body, tenant: { ...body.tenant, name: 'Forged Inc' } }), null, 2));
    for (const args of [
      ['backup', 'verify', id, '--json'],
      ['restore', id, '--as', 'mac-copy', '--json'],
    ]) {
      const r = await e.cli(args, { env: K });
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(json(r).error.message).toMatch(/manifest.json was altered \(its MAC does not match/);
    }
    // Dropping the mac of a format-6 encrypted manifest is refused too.
    const { mac: _m, ...noMac } = body;
    await writeFile(file, JSON.stringify(sealManifest(noMac), null, 2));
    const bare = await e.cli(['backup', 'verify', id, '--json'], { env: K });
    expect(bare.code).toBe(2);
    expect(json(bare).error.message).toMatch(/malformed at mac: an encrypted format 6 manifest has no mac/);
    await writeFile(file, text);
    const ok = await e.cli(['backup', 'verify', id, '--json'], { env: K });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const r = await e.cli(['restore', id, '--as', 'mac-copy', '--json'], { env: K });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});

describe('a killed backup', () => {
  it('SIGKILL mid-copy leaves a partial folder and a running record; doctor lists them; prune removes the folder; the next backup closes the record', async () => {
    const e = await env('bkill');
    await e.create([{ slug: 'bkill-p', model: 'pool', shard: 'us1' }]);
    await seed(e, 'bkill-p', 50, 'k');
    const t = (await tenant(e, 'bkill-p'))!;
    const tenantDir = join(storageFor(e.config, 'us-east').location, 'bkill-p');
    // A session holding the tasks table: the backup's COPY waits there, mid-copy, to be killed.
    const holder = new pg.Client({ connectionString: shardDbUrl(e.config, 'us1', t.database_name) });
    await holder.connect();
    let child = 0;
    try {
      await holder.query(`begin; lock table ${t.schema_name}.tasks in access exclusive mode`);
      const run = e.cli(['backup', 'create', 'bkill-p'], { onSpawn: (p) => (child = p) });
      // A failed spawn rejects it: handled now, thrown at `await run` below (not unhandled meanwhile).
      run.catch(() => undefined);
      await until(async () => {
        const op = await e.db
          .selectFrom('operations')
          .selectAll()
          .where('kind', '=', 'backup')
          .where('tenant_slug', '=', 'bkill-p')
          .where('status', '=', 'running')
          .executeTakeFirst();
        return (op?.progress as any)?.phase === 'copy';
      });
      await sleep(300);
      process.kill(child, 'SIGKILL');
      expect((await run).signal).toBe('SIGKILL');
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
    }
    const partials = (await readdir(tenantDir)).filter((n) => n.endsWith('.partial'));
    expect(partials).toHaveLength(1);
    const running = () =>
      e.db
        .selectFrom('operations')
        .select('id')
        .where('kind', '=', 'backup')
        .where('tenant_slug', '=', 'bkill-p')
        .where('status', '=', 'running')
        .execute();
    expect(await running()).toHaveLength(1);

    const doctor = await e.cli(['doctor', '--json']);
    expect(doctor.stdout).toContain(partials[0]);

    // prune removes the partial folder of a tenant whose lock nobody holds (--dry-run only says so).
    const dry = await e.cli(['backup', 'prune', '--keep-last', '5', '--dry-run', '--json']);
    expect(json(dry).backups).toContainEqual(expect.objectContaining({ id: partials[0], tenant: 'bkill-p', action: 'would delete' }));
    expect(await readdir(tenantDir)).toContain(partials[0]);
    const prune = await e.cli(['backup', 'prune', '--keep-last', '5', '--json']);
    expect(prune.code, prune.stdout + prune.stderr).toBe(0);
    expect(json(prune).backups).toContainEqual(
      expect.objectContaining({ id: partials[0], action: 'deleted', reason: 'left by a killed backup' }),
    );
    expect(await readdir(tenantDir)).not.toContain(partials[0]);

    const again = await e.cli(['backup', 'create', 'bkill-p', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(json(again).results[0].warnings.join('\n')).toMatch(/backup \d+ of bkill-p was killed; closed/);
    expect((await readdir(tenantDir)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(await running()).toEqual([]);
  });
});

describe('a default-privileges entry left pointing at a dropped schema', () => {
  it('backups of the database go on without their pg_dump file and say why; audit names it and the fix; after the fix pg_dump is back', async () => {
    const e = await env('orphanacl');
    await e.create([
      { slug: 'oa-s', model: 'schema', shard: 'us1' },
      { slug: 'oa-t', model: 'schema', shard: 'us1' },
    ]);
    await seed(e, 'oa-s', 5, 'oa');
    const t = (await tenant(e, 'oa-s'))!;
    const su = superuserUrl(shardDbUrl(e.config, t.shard, t.database_name));
    // What a tenant's session does (any role may, for itself, in any schema by name, taking no lock
    // on it): its entry left open while a schema is dropped, then committed.
    const a = new pg.Client({ connectionString: su });
    const b = new pg.Client({ connectionString: su });
    await a.connect();
    await b.connect();
    try {
      await b.query('create schema oa_doomed');
      await a.query('begin');
      await a.query('alter default privileges for role tenant_oa_t in schema oa_doomed grant select on tables to tenant_oa_t');
      await b.query('drop schema oa_doomed');
      await a.query('commit');
    } finally {
      await a.end();
      await b.end();
    }
    const r = await e.cli(['backup', 'create', 'oa-s', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const row = json(r).results[0];
    expect(row.status).toBe('succeeded');
    expect(row.warnings.join('\n')).toMatch(
      /no pg_dump file in this backup: pg_dump cannot read database .* while role tenant_oa_t \(entry \d+, schema oid \d+\) holds default privileges for a schema that no longer exists/,
    );
    const manifest = JSON.parse(await readFile(join(await archiveDir(e, row.backup), 'manifest.json'), 'utf8'));
    expect(manifest.dump).toBeNull();
    expect(new Set(manifest.tables.map((x: any) => x.from))).toEqual(new Set(['copy']));
    // Restorable as ever (a restore reads the tables' files only).
    const v = await e.cli(['backup', 'verify', row.backup, '--json']);
    expect(v.code, v.stderr + v.stdout).toBe(0);

    const audit = json(await e.cli(['audit', '--json']));
    const found = audit.findings.filter((f: any) => f.check === 'database.orphan-default-privileges');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ severity: 'high', tenant: 'oa-t', fixable: false });
    expect(found[0].message).toMatch(/pg_dump of .* fails/);
    // The named fix, run as a superuser: pg_dump reads the database again.
    const fix = new pg.Client({ connectionString: su });
    await fix.connect();
    try {
      await fix.query(found[0].fix.replace(/^-- [^:]*: /, ''));
    } finally {
      await fix.end();
    }
    const again = json(await e.cli(['backup', 'create', 'oa-s', '--json'])).results[0];
    expect(again.status).toBe('succeeded');
    expect(again.warnings).toBeUndefined();
    const m2 = JSON.parse(await readFile(join(await archiveDir(e, again.backup), 'manifest.json'), 'utf8'));
    expect(m2.dump).not.toBeNull();
  });
});
