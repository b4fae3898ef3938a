import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { storageFor } from '../../src/backup/regions.js';
import { sealManifest } from '../../src/backup/manifest.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { json, ownMigrateFleet, tenantDigests, withPg, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';
import { superuserUrl } from '../helpers/test-fleet.js';

/**
 * Issue 16, defect 3: constraints added `NOT VALID` over rows that break them (a rule for new rows
 * only) come back `NOT VALID` after a restore or a move, in every model, with the rows that break
 * them; validated ones come back validated. Private fleet (us1, eu1), least-privileged shard role,
 * fixture migrations of its own (the shared fleet's migrations/ is not touched), built CLI.
 */
const { env } = ownMigrateFleet();

const MODELS = ['pool', 'schema', 'database'] as const;
/** The constraints the fixture's 0005 adds: two NOT VALID over existing violations, one validated. */
const WATCHED = ['users_no_u1', 'projects_template_fk', 'tasks_title_set'];

/** convalidated of the watched constraints where the catalog says the tenant lives. */
async function constraintState(e: MigrateEnv, slug: string): Promise<Record<string, boolean>> {
  const t = (await tenant(e, slug))!;
  const rows = await e.q(
    t.shard,
    t.database_name,
    `select k.conname as name, k.convalidated as valid from pg_constraint k join pg_namespace n on n.oid = k.connamespace
      where n.nspname = $1 and k.conname = any($2) order by 1`,
    [t.schema_name, WATCHED],
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.valid]));
}

const EXPECTED = { projects_template_fk: false, tasks_title_set: true, users_no_u1: false };

/** The tenant's rows that break the NOT VALID rules (both must still be there after a restore or a move). */
async function violations(e: MigrateEnv, slug: string): Promise<{ users: number; projects: number }> {
  const t = (await tenant(e, slug))!;
  const s = `"${t.schema_name}"`;
  const [u] = await e.q(t.shard, t.database_name, `select count(*)::int as n from ${s}.users where tenant_id = $1 and email = 'u1@x.io'`, [
    t.key,
  ]);
  const [p] = await e.q(
    t.shard,
    t.database_name,
    `select count(*)::int as n from ${s}.projects p where p.tenant_id = $1 and p.template_id is not null
        and not exists (select 1 from ${s}.projects q where q.tenant_id = p.tenant_id and q.id = p.template_id)`,
    [t.key],
  );
  return { users: u.n, projects: p.n };
}

/** New rows are still checked: the constraint is there and enforced for writes. */
async function newViolationRefused(e: MigrateEnv, slug: string): Promise<void> {
  const t = (await tenant(e, slug))!;
  await expect(
    e.q(t.shard, t.database_name, `insert into "${t.schema_name}".users (tenant_id, email, display_name) values ($1, 'u1@x.io', 'again')`, [
      t.key,
    ]),
  ).rejects.toThrow(/users_no_u1/);
}

async function assertAsSource(e: MigrateEnv, slug: string, digests: Record<string, string>): Promise<void> {
  expect(await tenantDigests(e, slug)).toEqual(digests);
  expect(await constraintState(e, slug)).toEqual(EXPECTED);
  expect(await violations(e, slug)).toEqual({ users: 1, projects: 2 });
  await newViolationRefused(e, slug);
}

/** Backups taken by the first tests, by slug. */
const backups = new Map<string, string>();

async function archiveDir(id: string): Promise<string> {
  for (const region of Object.keys(e.config.regions)) {
    const st = storageFor(e.config, region);
    if (await st.has(id)) return join(st.location, id.slice(0, id.indexOf('.')), id);
  }
  throw new Error(`no archive ${id}`);
}

const su = (shard: string, sql: string) =>
  withPg(superuserUrl(databaseUrl(e.config.shards.find((x) => x.name === shard)!.url, 'postgres')), (c) => c.query(sql));

let e: MigrateEnv;
const slugs = (prefix: string) => MODELS.map((m) => `${prefix}-${m.slice(0, 1)}`);

beforeAll(async () => {
  e = await env('nv');
  await e.addMigration('0004_projects_template.sql', 'alter table projects add column template_id uuid;\n');
  const all = [...slugs('rs'), ...slugs('mv'), 'rs-nb'];
  await e.create(
    all.map((slug) => ({ slug, model: slug === 'rs-nb' ? 'pool' : MODELS.find((m) => slug.endsWith(`-${m[0]}`))!, shard: 'us1' })),
  );
  for (const slug of all) {
    await seed(e, slug, 20, slug);
    const t = (await tenant(e, slug))!;
    const s = `"${t.schema_name}"`;
    // Rows the later NOT VALID rules break: one user, two projects pointing at templates that do not exist.
    await e.q(t.shard, t.database_name, `insert into ${s}.users (tenant_id, email, display_name) values ($1, 'u1@x.io', 'old rule')`, [
      t.key,
    ]);
    await e.q(
      t.shard,
      t.database_name,
      `insert into ${s}.projects (tenant_id, name, template_id) select $1, 'from template ' || i, gen_random_uuid() from generate_series(1, 2) i`,
      [t.key],
    );
  }
  await e.addMigration(
    '0005_rules_for_new_rows.sql',
    [
      `alter table users add constraint users_no_u1 check (email <> 'u1@x.io') not valid;`,
      'alter table projects add constraint projects_template_fk foreign key ({{tenant_key_column}}, template_id) references projects ({{tenant_key_column}}, id) not valid;',
      'alter table tasks add constraint tasks_title_set check (length(title) > 0);',
      '',
    ].join('\n'),
  );
  const up = await e.cli(['migrate', 'up', '--json']);
  expect(up.code, up.stderr + up.stdout).toBe(0);
  for (const slug of all) expect(await constraintState(e, slug)).toEqual(EXPECTED);
}, 180_000);

describe('NOT VALID constraints over rows that break them', { timeout: 240_000 }, () => {
  it.each(MODELS)('%s: backup verify names them; restore --as and --replace bring them back NOT VALID with the rows', async (model) => {
    const slug = `rs-${model[0]}`;
    const before = await tenantDigests(e, slug);
    const b = await e.cli(['backup', 'create', slug, '--json']);
    expect(b.code, b.stderr + b.stdout).toBe(0);
    const id = json(b).results[0].backup;
    backups.set(slug, id);

    const v = await e.cli(['backup', 'verify', id, '--json']);
    expect(v.code, v.stderr + v.stdout).toBe(0);
    const doc = json(v);
    expect(doc.ok).toBe(true);
    expect(doc.notValid.map((c: any) => `${c.table}.${c.name}:${c.type}:${c.violatingRows}`).sort()).toEqual([
      'projects.projects_template_fk:foreign key:2',
      'users.users_no_u1:check:1',
    ]);
    const text = await e.cli(['backup', 'verify', id]);
    expect(text.stdout).toMatch(/NOT VALID/);
    expect(text.stdout).toMatch(/users_no_u1/);

    const as = await e.cli(['restore', id, '--as', `${slug}-copy`, '--json']);
    expect(as.code, as.stderr + as.stdout).toBe(0);
    expect(json(as).result.status).toBe('succeeded');
    // A new key, the same rows (the digests blank the key).
    await assertAsSource(e, `${slug}-copy`, before);

    const rep = await e.cli(['restore', id, '--replace', '--yes', '--json']);
    expect(rep.code, rep.stderr + rep.stdout).toBe(0);
    expect(json(rep).result.status).toBe('succeeded');
    await assertAsSource(e, slug, before);
  });

  it.each(MODELS)('%s: a move to another shard keeps them NOT VALID with the rows', async (model) => {
    const slug = `mv-${model[0]}`;
    const before = await tenantDigests(e, slug);
    const r = await e.cli(['move', slug, '--to-shard', 'eu1', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect((await tenant(e, slug))!.shard).toBe('eu1');
    await assertAsSource(e, slug, before);
    const c = await e.cli(['move', 'complete', slug, '--yes', '--json']);
    expect(c.code, c.stderr + c.stdout).toBe(0);
  });

  it('schema → pool and pool → database: the pool keeps its rule NOT VALID for every tenant, the rows come along', async () => {
    const before = await tenantDigests(e, 'mv-s');
    const r = await e.cli(['move', 'mv-s', '--to-shard', 'us1', '--to-model', 'pool', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect((await tenant(e, 'mv-s'))!.model).toBe('pool');
    await assertAsSource(e, 'mv-s', before);
    expect((await e.cli(['move', 'complete', 'mv-s', '--yes'])).code).toBe(0);
    const nb = await tenantDigests(e, 'rs-nb');
    const back = await e.cli(['move', 'mv-s', '--to-shard', 'eu1', '--to-model', 'database', '--yes', '--json']);
    expect(back.code, back.stderr + back.stdout).toBe(0);
    await assertAsSource(e, 'mv-s', before);
    // The pool's neighbour: rows and rules as they were.
    expect(await tenantDigests(e, 'rs-nb')).toEqual(nb);
    expect(await constraintState(e, 'rs-nb')).toEqual(EXPECTED);
  });

  it('without the grant to switch triggers off (row by row), a pool restore and a pool move hold the NOT VALID foreign key too', async () => {
    for (const shard of ['us1', 'eu1']) await su(shard, 'revoke set on parameter session_replication_role from tenantctl');
    try {
      const r = await e.cli(['restore', backups.get('rs-p')!, '--as', 'rs-p-rbr', '--json']);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(json(r).result.foreignKeys).toBe('row by row');
      await assertAsSource(e, 'rs-p-rbr', await tenantDigests(e, 'rs-p'));
      const before = await tenantDigests(e, 'mv-p');
      const m = await e.cli(['move', 'mv-p', '--to-shard', 'us1', '--yes', '--json']);
      expect(m.code, m.stderr + m.stdout).toBe(0);
      expect(json(m).tables.every((t: any) => t.foreignKeys === 'row by row')).toBe(true);
      await assertAsSource(e, 'mv-p', before);
    } finally {
      for (const shard of ['us1', 'eu1']) await su(shard, 'grant set on parameter session_replication_role to tenantctl');
    }
  });

  it('pool → pool with --fast-load (foreign keys dropped for the load): the broken check is held as well', async () => {
    expect((await e.cli(['move', 'complete', 'mv-p', '--yes'])).code).toBe(0);
    const before = await tenantDigests(e, 'mv-p');
    const r = await e.cli(['move', 'mv-p', '--to-shard', 'eu1', '--fast-load', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect((await tenant(e, 'mv-p'))!.shard).toBe('eu1');
    await assertAsSource(e, 'mv-p', before);
  });

  it('a backup from before the record (format 2): verify says so, and it restores, the migrations saying what is NOT VALID', async () => {
    for (const slug of ['rs-p', 'rs-s']) {
      const id = backups.get(slug)!;
      const file = join(await archiveDir(id), 'manifest.json');
      const { checksum: _c, constraints: _k, ...body } = JSON.parse(await readFile(file, 'utf8'));
      await writeFile(file, JSON.stringify(sealManifest({ ...body, format: 2 }), null, 2));
      const v = await e.cli(['backup', 'verify', id, '--json']);
      expect(v.code, v.stderr + v.stdout).toBe(0);
      expect(json(v).notValid).toBeNull();
      const r = await e.cli(['restore', id, '--as', `${slug}-old`, '--json']);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      await assertAsSource(e, `${slug}-old`, await tenantDigests(e, slug));
    }
  });

  it('an online move leaves logical replication (its table copy would trip over the rows) and goes by trigger capture, keeping them', async () => {
    const dry = await e.cli(['move', 'rs-s', '--to-shard', 'eu1', '--online', '--dry-run', '--json']);
    expect(dry.code, dry.stderr + dry.stdout).toBe(0);
    expect(json(dry).onlineVia).toBe('triggers');
    expect(json(dry).notReplication).toMatch(/break NOT VALID check constraint\(s\) users\.users_no_u1 \(1 rows\)/);
    const before = await constraintState(e, 'rs-s');
    const r = await e.cli(['move', 'rs-s', '--to-shard', 'eu1', '--online', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(json(r)).toMatchObject({ status: 'switched', onlineVia: 'triggers' });
    expect((await tenant(e, 'rs-s'))!.shard).toBe('eu1');
    expect(await constraintState(e, 'rs-s')).toEqual(before);
  });

  it('a rule the source validated after the migration made it NOT VALID comes back validated (restore and move)', async () => {
    await e.create([{ slug: 'vl-s', model: 'schema', shard: 'us1' }]);
    await seed(e, 'vl-s', 20, 'vl-s');
    const t = (await tenant(e, 'vl-s'))!;
    await e.q(t.shard, t.database_name, `alter table "${t.schema_name}".users validate constraint users_no_u1`);
    const want = { ...EXPECTED, users_no_u1: true };
    expect(await constraintState(e, 'vl-s')).toEqual(want);
    const b = await e.cli(['backup', 'create', 'vl-s', '--json']);
    expect(b.code, b.stderr + b.stdout).toBe(0);
    const r = await e.cli(['restore', json(b).results[0].backup, '--as', 'vl-s-copy', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(await constraintState(e, 'vl-s-copy')).toEqual(want);
    const m = await e.cli(['move', 'vl-s', '--to-shard', 'eu1', '--yes', '--json']);
    expect(m.code, m.stderr + m.stdout).toBe(0);
    expect(await constraintState(e, 'vl-s')).toEqual(want);
  });
});
