import { beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { json, ownMigrateFleet, until, withPg, type MigrateEnv, tenantDigests } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import { untilCopying } from '../helpers/move-ops.js';

/**
 * Online moves with the least-privileged shard role (issue 16, item 11): where the role may not
 * create subscriptions, `move --online` captures the tenant's writes with triggers at the source,
 * copies one snapshot, replays the changes committed after it, and fences writes only for the
 * last round. On a private 2-shard fleet connected as `tenantctl` (LOGIN CREATEDB CREATEROLE),
 * through the built CLI, with the application writing through the URL it would use: the pool's
 * serving role with the tenant setting, or a schema tenant's own role.
 */
const { env } = ownMigrateFleet();

const url = (e: MigrateEnv, shard: string, db: string) => databaseUrl(e.config.shards.find((s) => s.name === shard)!.url, db);
const as = (e: MigrateEnv, shard: string, db: string, user: string, password: string) => {
  const u = new URL(url(e, shard, db));
  u.username = user;
  u.password = encodeURIComponent(password);
  return u.toString();
};

/** The pool application's connection: the serving role with the tenant's setting. */
const poolApp = (e: MigrateEnv, key: string) => ({
  url: as(e, 'us1', `pool_${e.name}`, e.config.servingRole.name, e.config.servingRole.password ?? ''),
  setup: (c: pg.Client) => c.query('select set_config($1, $2, false)', [e.config.rls.setting, key]).then(() => undefined),
});

/**
 * The application: inserts, updates and deletes of its projects, one after another, until the
 * first write the fence refuses (SQLSTATE 25006). `state` is what every committed write left:
 * id → name, or null once deleted.
 */
function steadyWriter(
  app: { url: string; setup: (c: pg.Client) => Promise<void> },
  schema: string,
  key: string,
  tag: string,
  o: { deleteSeeded?: boolean } = { deleteSeeded: true },
) {
  const state = new Map<string, string | null>();
  const other: string[] = [];
  let fenced = false;
  let stop = false;
  let commits = 0;
  const p = `"${schema}".projects`;
  const done = withPg(app.url, async (c) => {
    await app.setup(c);
    // The first delete takes a seeded project, whose tasks and comments go with it (cascades are captured too).
    const seeded = await c.query<{ id: string }>(`select id from ${p} where tenant_id = $1 order by id limit 1`, [key]);
    for (let i = 0; !stop; i++) {
      const live = [...state].filter(([, v]) => v !== null).map(([k]) => k);
      try {
        if (i === 5 && o.deleteSeeded && seeded.rows[0]) {
          await c.query(`delete from ${p} where tenant_id = $1 and id = $2`, [key, seeded.rows[0].id]);
          state.set(seeded.rows[0].id, null);
        } else if (i % 5 === 3 && live.length > 3) {
          const id = live[i % live.length];
          await c.query(`update ${p} set name = $3 where tenant_id = $1 and id = $2`, [key, id, `${tag} u${i}`]);
          state.set(id, `${tag} u${i}`);
        } else if (i % 7 === 6 && live.length > 3) {
          const id = live[(i * 3) % live.length];
          await c.query(`delete from ${p} where tenant_id = $1 and id = $2`, [key, id]);
          state.set(id, null);
        } else {
          const r = await c.query<{ id: string }>(`insert into ${p} (tenant_id, name) values ($1, $2) returning id`, [key, `${tag} ${i}`]);
          state.set(r.rows[0].id, `${tag} ${i}`);
        }
        commits++;
      } catch (err) {
        if ((err as { code?: string }).code === '25006') {
          fenced = true;
          return;
        }
        other.push(String(err));
        if (other.length > 20) return;
      }
    }
  });
  // Awaited by stop(); a connect failure meanwhile is reported there, not as an unhandled rejection.
  done.catch(() => undefined);
  return {
    state,
    other,
    commits: () => commits,
    fenced: () => fenced,
    async stop() {
      stop = true;
      await done;
    },
  };
}

/** Every committed write is at the target: inserted and updated rows with their last name, deleted ones gone. */
async function assertAllAtTarget(e: MigrateEnv, slug: string, state: Map<string, string | null>): Promise<void> {
  const t = (await tenant(e, slug))!;
  const rows = await e.q(
    t.shard,
    t.database_name,
    `select id::text, name from "${t.schema_name}".projects where tenant_id = $1 and id = any($2::uuid[])`,
    [t.key, [...state.keys()]],
  );
  const there = new Map(rows.map((r) => [r.id as string, r.name as string]));
  const wrong = [...state].filter(([id, name]) => (name === null ? there.has(id) : there.get(id) !== name));
  expect(wrong).toEqual([]);
}

/** Capture triggers and change tables on every database either cluster holds for this env. */
async function leftovers(e: MigrateEnv): Promise<string[]> {
  const out: string[] = [];
  for (const shard of ['us1', 'eu1']) {
    const dbs = await e.q(
      shard,
      'postgres',
      `select datname as d from pg_database where datallowconn and not datistemplate and has_database_privilege(datname, 'CONNECT')
         and (datname like '%_' || $1 or datname like 't\\_%')`,
      [e.name],
    );
    for (const { d } of dbs) {
      const r = await e.q(
        shard,
        d,
        `select 'trigger ' || tgname as o from pg_trigger where tgname like 'tenantctl\\_capture%'
         union all select 'table ' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'tenantctl_capture' and c.relkind = 'r'
         union all select 'function ' || p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'tenantctl_capture'`,
      );
      out.push(...r.map((x) => `${shard}/${d}: ${x.o}`));
    }
  }
  return out;
}

let e: MigrateEnv;
beforeAll(async () => {
  e = await env('cap');
  await e.create([
    { slug: 'cp-w', model: 'pool', shard: 'us1' },
    { slug: 'cp-n', model: 'pool', shard: 'us1' },
    { slug: 'cp-k', model: 'pool', shard: 'us1' },
    { slug: 'cs-w', model: 'schema', shard: 'us1' },
    { slug: 'cs-f', model: 'schema', shard: 'us1' },
    { slug: 'cs-k', model: 'schema', shard: 'us1' },
  ]);
  for (const [i, s] of ['cp-w', 'cp-n', 'cp-k', 'cs-w', 'cs-f', 'cs-k'].entries()) await seed(e, s, 60, `g${i}`);
}, 180_000);

describe('online moves by trigger capture (least-privileged role)', () => {
  it('dry run and doctor say the move goes by trigger capture, and why not by logical replication', async () => {
    const r = await e.cli(['move', 'cp-w', '--to-shard', 'eu1', '--online', '--dry-run', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    expect([doc.status, doc.online, doc.onlineVia]).toEqual(['planned', true, 'triggers']);
    expect(doc.notReplication).toMatch(/not a superuser \(PostgreSQL 15 allows CREATE SUBSCRIPTION to superusers only\)/);
    const text = await e.cli(['move', 'cp-w', '--to-shard', 'eu1', '--online', '--dry-run']);
    expect(text.stdout).toMatch(/online via trigger capture \(logical replication is not possible: .*REPLICATION/);
    const checks = json(await e.cli(['doctor', '--json'])).checks;
    expect(checks.find((c: any) => c.check === 'online moves on eu1').detail).toMatch(/goes by trigger capture .*not a superuser/);
  }, 60_000);

  it('pool: a steady writer loses no committed write, the neighbour is neither captured nor touched, nothing is left', async () => {
    const t = (await tenant(e, 'cp-w'))!;
    const n = (await tenant(e, 'cp-n'))!;
    const neighbourBefore = await tenantDigests(e, 'cp-n');
    const app = steadyWriter(poolApp(e, t.key), 'app', t.key, 'w');
    await until(async () => app.commits() > 20);
    // The neighbour writes too, into the same shared tables (only rows of its own, deleted afterwards).
    const neighbour = steadyWriter(poolApp(e, n.key), 'app', n.key, 'n', { deleteSeeded: false });
    let captured: { mine: number; theirs: number; denied?: string } | undefined;
    const move = e.cli(['move', 'cp-w', '--to-shard', 'eu1', '--online', '--json'], {
      env: { TENANTCTL_FAULT: 'move.copy:sleep' },
    });
    // While the copy pauses after its snapshot: the change table holds the tenant's changes only,
    // and the application's role cannot read it.
    const table = await until(async () => {
      const r = await e.q(
        'us1',
        `pool_${e.name}`,
        `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relname like 'changes\\_%' and n.nspname = 'tenantctl_capture'`,
      );
      return r[0]?.relname as string | undefined;
    });
    await until(async () => {
      const r = await e.q(
        'us1',
        `pool_${e.name}`,
        `select count(*) filter (where coalesce(new, old) ->> 'tenant_id' = $1)::int as mine,
                count(*) filter (where coalesce(new, old) ->> 'tenant_id' = $2)::int as theirs
           from tenantctl_capture.${table} where tbl = 'projects'`,
        [t.key, n.key],
      );
      captured = r[0];
      return r[0].mine > 5;
    });
    captured!.denied = await withPg(poolApp(e, t.key).url, (c) =>
      c.query(`select count(*) from tenantctl_capture.${table}`).then(
        () => 'readable',
        (err) => (err as { code?: string }).code,
      ),
    );
    const r = await move;
    await app.stop();
    await neighbour.stop();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    expect([doc.status, doc.online, doc.onlineVia]).toEqual(['switched', true, 'triggers']);
    expect(doc.phases.map((p: any) => p.phase)).toEqual(['preflight', 'copy', 'fence', 'catch-up', 'verify', 'switch', 'unfence']);
    expect(doc.tables.every((x: any) => x.source.hash === x.target.hash)).toBe(true);
    expect(captured).toEqual({ mine: expect.any(Number), theirs: 0, denied: '42501' });
    // The writer met the fence (and nothing else); every write it saw committed is at the target.
    expect(app.other).toEqual([]);
    expect(app.fenced()).toBe(true);
    expect([...app.state.values()].some((v) => v === null)).toBe(true);
    await assertAllAtTarget(e, 'cp-w', app.state);
    // The neighbour was never fenced, and its rows stayed where they were: none crossed to eu1.
    expect([neighbour.other, neighbour.fenced()]).toEqual([[], false]);
    expect(neighbour.commits()).toBeGreaterThan(0);
    expect((await e.q('eu1', `pool_${e.name}`, 'select count(*)::int as n from app.projects where tenant_id = $1', [n.key]))[0].n).toBe(0);
    await withPg(url(e, 'us1', `pool_${e.name}`), async (c) => {
      const ids = [...neighbour.state].filter(([, v]) => v !== null).map(([k]) => k);
      await c.query('delete from app.projects where tenant_id = $1 and id = any($2::uuid[])', [n.key, ids]);
    });
    expect(await tenantDigests(e, 'cp-n')).toEqual(neighbourBefore);
    expect(await leftovers(e)).toEqual([]);
    // The target takes new writes of the tenant (its sequences and keys are in order).
    await withPg(as(e, 'eu1', `pool_${e.name}`, e.config.servingRole.name, e.config.servingRole.password ?? ''), async (c) => {
      await c.query('select set_config($1, $2, false)', [e.config.rls.setting, t.key]);
      await c.query(`insert into app.projects (tenant_id, name) values ($1, 'after')`, [t.key]);
    });
  }, 120_000);

  it("schema: a steady writer on the tenant's own role loses no committed write; nothing is left", async () => {
    const t = (await tenant(e, 'cs-w'))!;
    const role = `tenant_${t.slug.replace(/-/g, '_')}`;
    await e.q('us1', 'postgres', `alter role ${role} password 'app-secret'`);
    const app = steadyWriter(
      { url: as(e, 'us1', t.database_name, role, 'app-secret'), setup: async () => undefined },
      t.schema_name,
      t.key,
      's',
    );
    await until(async () => app.commits() > 20);
    const r = await e.cli(['move', 'cs-w', '--to-shard', 'eu1', '--online', '--json'], {
      env: { TENANTCTL_FAULT: 'move.copy:sleep' },
    });
    await app.stop();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    expect([doc.status, doc.onlineVia]).toEqual(['switched', 'triggers']);
    expect(doc.writeBlockedMs).toBeGreaterThan(0);
    expect([app.other, app.fenced()]).toEqual([[], true]);
    await assertAllAtTarget(e, 'cs-w', app.state);
    expect((await tenant(e, 'cs-w'))!.shard).toBe('eu1');
    expect(await leftovers(e)).toEqual([]);
  }, 120_000);

  it('a failed verification removes the triggers, the change table and the copy, and lifts the fence', async () => {
    const before = await tenantDigests(e, 'cs-f');
    const r = await e.cli(['move', 'cs-f', '--to-shard', 'eu1', '--online', '--json'], { env: { TENANTCTL_FAULT: 'move.verify:tamper' } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(json(r).error.code).toBe('MOVE_VERIFY');
    // move status names the phase it failed in (the proof before the fence is the copy phase's end), not the last one done.
    expect(json(await e.cli(['move', 'status', 'cs-f', '--json'])).move).toMatchObject({ status: 'failed', phase: 'copy' });
    expect(await leftovers(e)).toEqual([]);
    expect((await e.q('eu1', `schemas_${e.name}`, `select 1 from pg_namespace where nspname = 't_cs_f'`)).length).toBe(0);
    const t = (await tenant(e, 'cs-f'))!;
    expect([t.shard, t.status]).toEqual(['us1', 'active']);
    expect(await tenantDigests(e, 'cs-f')).toEqual(before);
    await e.q('us1', t.database_name, `update "${t.schema_name}".tasks set title = title`);
  }, 60_000);

  async function killedInCopy(slug: string): Promise<number> {
    let pid = 0;
    const run = e.cli(['move', slug, '--to-shard', 'eu1', '--online', '--json'], {
      env: { TENANTCTL_FAULT: 'move.copy' },
      onSpawn: (p) => (pid = p),
    });
    const op = await untilCopying(e.db, slug, 30_000);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    // The triggers and the change table outlive the mover.
    const left = await leftovers(e);
    expect(left.filter((l) => l.includes(`changes_${op.id}`))).toHaveLength(1);
    expect(left.filter((l) => l.includes(`tenantctl_capture_${op.id}_`)).length).toBeGreaterThanOrEqual(4);
    return Number(op.id);
  }

  it('pool: SIGKILL in the copy, then the same move cleans up first and moves', async () => {
    const before = await tenantDigests(e, 'cp-k');
    const id = await killedInCopy('cp-k');
    const r = await e.cli(['move', 'cp-k', '--to-shard', 'eu1', '--online', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = json(r);
    expect(doc.resumed.move).toBe(id);
    expect(doc.resumed.cleaned.join(' ')).toMatch(/removed the capture triggers of move \d+ .*dropped the change table/);
    expect((await tenant(e, 'cp-k'))!.shard).toBe('eu1');
    expect(await tenantDigests(e, 'cp-k')).toEqual(before);
    expect(await leftovers(e)).toEqual([]);
  }, 90_000);

  it('schema: SIGKILL in the copy, then move rollback removes the capture', async () => {
    await killedInCopy('cs-k');
    const rb = await e.cli(['move', 'rollback', 'cs-k', '--yes', '--json']);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    expect(json(rb).cleaned.join(' ')).toMatch(/removed the capture triggers/);
    expect(await leftovers(e)).toEqual([]);
    expect((await tenant(e, 'cs-k'))!.shard).toBe('us1');
  }, 90_000);
});
