import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAudit } from '../../src/audit/run.js';
import { applyFixes } from '../../src/audit/fix.js';
import type { Finding } from '../../src/audit/types.js';
import { createTenant } from '../../src/provision/create-tenant.js';
import { updateTenant } from '../../src/catalog/tenants.js';
import { cli } from '../helpers/cli.js';
import { startAuditFleet, type AuditFleet } from '../helpers/audit-fleet.js';

/**
 * The audit against a private fleet provisioned by tenantctl (connecting as a least-privilege
 * role): clean first; then each check's flaw is planted on real PostgreSQL, found, fixed by
 * --fix where tenantctl manages the fix, and the fleet is clean again.
 */
let af: AuditFleet;
const keys: Record<string, string> = {};

const audit = async (selector = {}) => {
  const r = await runAudit({ config: af.config, db: af.db, fleet: af.conns }, { concurrency: 4, selector });
  // A unit that could not run would hide findings: no case may pass by an error.
  expect(r.units.filter((u) => u.status !== 'succeeded')).toEqual([]);
  return r;
};
const summary = (f: Finding[]) => f.map((x) => `${x.check} ${x.shard}/${x.database} ${x.object}: ${x.message}`);

beforeAll(async () => {
  af = await startAuditFleet(2);
  for (const [slug, model] of [
    ['au-p1', 'pool'],
    ['au-p2', 'pool'],
    ['au-s1', 'schema'],
    ['au-s2', 'schema'],
    ['au-d1', 'database'],
    ['au-d2', 'database'],
  ] as const) {
    const r = await createTenant(af.deps, { slug, model, shard: 'us1' });
    expect(r.status, JSON.stringify(r)).toBe('succeeded');
    keys[slug] = (await af.db.selectFrom('tenants').select('key').where('slug', '=', slug).executeTakeFirstOrThrow()).key;
  }
  // Rows of both pool tenants, written by tenantctl's role (owner, exempt from the policies).
  for (const slug of ['au-p1', 'au-p2']) {
    await af.as('us1', 'tenant_pool', `insert into app.workspaces (id, name) values ($1, $2)`, [keys[slug], slug]);
    await af.as('us1', 'tenant_pool', `insert into app.users (tenant_id, email, display_name) values ($1, 'same@example.com', $2)`, [
      keys[slug],
      slug,
    ]);
  }
}, 240_000);

afterAll(async () => {
  await af?.stop();
});

describe('a fleet provisioned by tenantctl', () => {
  it('audits clean: zero findings, every unit ran, connections within each budget, no membership left behind', async () => {
    const r = await audit();
    expect(summary(r.findings)).toEqual([]);
    expect(r.units.filter((u) => u.status !== 'succeeded')).toEqual([]);
    expect(r.units.map((u) => u.target)).toEqual(
      expect.arrayContaining(['us1/(cluster)', 'us1/tenant_pool', 'us1/tenant_schemas#0', 'us1/t_au_d1']),
    );
    for (const [shard, c] of Object.entries(r.connections)) expect(c.peak, shard).toBeLessThanOrEqual(c.budget);
    // The probes granted tenantctl the tenant roles inside rolled-back transactions only.
    const left = await af.su(
      'us1',
      'postgres',
      `select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid
      join pg_roles u on u.oid = m.member where u.rolname = 'tenantctl' and (r.rolname like 'tenant\\_%' or r.rolname = 'app_user')`,
    );
    expect(left.rows).toEqual([]);
  });
});

interface Case {
  name: string;
  /** [database, sql, who]: as the superuser unless 'tenantctl' (objects migrations would make are tenantctl's). */
  plant: [string, string, 'tenantctl'?][];
  expect: { check: string; object?: string }[];
  fixable: boolean;
  /** Undo what --fix does not (or, for unfixable flaws, all of it), as the superuser. */
  cleanup?: [string, string][];
}

const S = 'tenant_schemas';
const P = 'tenant_pool';
const setting = `tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid`;

const cases: Case[] = [
  {
    name: 'a tenant table with row-level security off',
    plant: [
      [
        P,
        `alter table app.comments disable row level security; drop policy tenantctl_isolation on app.comments; drop policy tenantctl_admin on app.comments`,
      ],
    ],
    expect: [{ check: 'pool.rls-disabled', object: 'app.comments' }],
    fixable: true,
  },
  {
    name: 'policies while row-level security is off',
    plant: [[P, 'alter table app.projects disable row level security']],
    expect: [{ check: 'pool.policies-while-disabled', object: 'app.projects' }],
    fixable: true,
  },
  {
    name: 'row-level security on and no policy',
    plant: [[P, 'drop policy tenantctl_isolation on app.tasks; drop policy tenantctl_admin on app.tasks']],
    expect: [{ check: 'pool.no-policy', object: 'app.tasks' }],
    fixable: true,
  },
  {
    name: 'enabled but not forced on a table the serving role owns',
    plant: [
      [
        P,
        `create table app.notes (tenant_id uuid not null, body text); alter table app.notes enable row level security;
      create policy tenantctl_isolation on app.notes using (${setting}) with check (${setting}); grant select on app.notes to tenantctl;
      alter table app.notes owner to app_user; grant all on app.notes to tenantctl`,
      ],
    ],
    expect: [{ check: 'pool.rls-not-forced', object: 'app.notes' }],
    fixable: false,
    cleanup: [[P, 'drop table app.notes']],
  },
  {
    name: 'an always-true policy (also caught by the probes)',
    plant: [[P, `create policy leak on app.users for select to public using (true)`]],
    expect: [
      { check: 'pool.always-true-policy', object: 'policy leak on app.users' },
      { check: 'probe.cross-tenant-read', object: 'app.users' },
    ],
    fixable: true,
  },
  {
    name: 'a policy that lets writes through unchecked',
    plant: [[P, `create policy w on app.users for update to app_user using (${setting}) with check (true)`]],
    expect: [{ check: 'pool.unchecked-writes', object: 'policy w on app.users' }],
    fixable: true,
  },
  {
    name: 'an always-true insert policy (the write probe gets through)',
    plant: [[P, `create policy ins on app.users for insert to app_user with check (true)`]],
    expect: [
      { check: 'pool.always-true-policy', object: 'policy ins on app.users' },
      { check: 'probe.cross-tenant-write', object: 'app.users' },
    ],
    fixable: true,
  },
  {
    name: 'a permissive policy that does not use the tenant key',
    plant: [[P, `create policy named on app.users for select using (display_name <> '')`]],
    expect: [
      { check: 'pool.policy-without-key', object: 'policy named on app.users' },
      { check: 'probe.cross-tenant-read', object: 'app.users' },
    ],
    fixable: true,
  },
  {
    name: "a view with its owner's rights over tenant tables",
    plant: [[P, 'create view app.all_users as select * from app.users; grant select on app.all_users to app_user', 'tenantctl']],
    expect: [{ check: 'pool.view-owner-rights', object: 'app.all_users' }],
    fixable: true,
    cleanup: [[P, 'drop view app.all_users']],
  },
  {
    name: 'a view of the shard role reachable by the serving role',
    plant: [[P, 'create view app.statuses as select * from app.task_statuses; grant select on app.statuses to app_user', 'tenantctl']],
    expect: [{ check: 'shard-role.reach', object: 'app.statuses' }],
    fixable: true,
    cleanup: [[P, 'drop view app.statuses']],
  },
  {
    name: 'a partition readable directly without policies',
    plant: [
      [
        P,
        `create table app.events (tenant_id uuid not null, n int) partition by hash (tenant_id);
      create table app.events_0 partition of app.events for values with (modulus 1, remainder 0);
      alter table app.events enable row level security;
      create policy tenantctl_isolation on app.events using (${setting}) with check (${setting});
      create policy tenantctl_admin on app.events to tenantctl using (true) with check (true);
      grant select on app.events, app.events_0 to app_user`,
        'tenantctl',
      ],
    ],
    expect: [{ check: 'pool.partition-unprotected', object: 'app.events_0' }],
    fixable: true,
    cleanup: [[P, 'drop table app.events']],
  },
  {
    name: 'a materialized view readable by the serving role',
    plant: [
      [P, 'create materialized view app.mv as select tenant_id, email from app.users; grant select on app.mv to app_user', 'tenantctl'],
    ],
    expect: [{ check: 'pool.matview-readable', object: 'app.mv' }],
    fixable: true,
    cleanup: [[P, 'drop materialized view app.mv']],
  },
  {
    name: 'TRUNCATE granted to the serving role',
    plant: [[P, 'grant truncate on app.tasks to app_user']],
    expect: [{ check: 'pool.dangerous-grant', object: 'app.tasks' }],
    fixable: true,
  },
  {
    name: 'a unique key without the tenant key (the collision probe sees it)',
    plant: [
      [
        P,
        `update app.users set email = 'x-' || tenant_id || '@example.com' where tenant_id = '${'$A'}'::uuid; create unique index users_email_global on app.users (email)`,
      ],
    ],
    expect: [
      { check: 'pool.unique-without-key', object: 'index app.users_email_global' },
      { check: 'probe.unique-collision', object: 'app.users' },
    ],
    fixable: false,
    cleanup: [[P, 'drop index app.users_email_global']],
  },
  {
    name: 'a foreign key without the tenant key',
    plant: [
      [
        P,
        'create unique index users_id_global on app.users (id); alter table app.comments add constraint comments_author_global foreign key (author_id) references app.users (id)',
      ],
    ],
    expect: [{ check: 'pool.fk-without-key', object: 'constraint comments_author_global on app.comments' }],
    fixable: false,
    cleanup: [[P, 'alter table app.comments drop constraint comments_author_global; drop index app.users_id_global']],
  },
  {
    name: 'the serving role with BYPASSRLS',
    plant: [['postgres', 'alter role app_user bypassrls']],
    expect: [{ check: 'role.bypasses-rls', object: 'role app_user' }],
    fixable: false,
    cleanup: [['postgres', 'alter role app_user nobypassrls']],
  },
  {
    name: 'a tenant role member of a BYPASSRLS role',
    plant: [['postgres', 'create role power_user bypassrls nologin; grant power_user to tenant_au_s1']],
    expect: [{ check: 'role.bypasses-rls', object: 'role tenant_au_s1' }],
    fixable: true,
    cleanup: [['postgres', 'drop role power_user']],
  },
  {
    name: "tenantctl's shard role with BYPASSRLS",
    plant: [['postgres', 'alter role tenantctl bypassrls']],
    expect: [{ check: 'shard-role.privileged', object: 'role tenantctl' }],
    fixable: false,
    cleanup: [['postgres', 'alter role tenantctl nobypassrls']],
  },
  {
    name: 'a SECURITY DEFINER function PUBLIC can execute, search_path not pinned',
    plant: [
      [P, `create function app.peek() returns bigint security definer language sql as 'select count(*) from app.users'`, 'tenantctl'],
    ],
    expect: [
      { check: 'function.definer-executable', object: 'function app.peek()' },
      { check: 'function.definer-search-path', object: 'function app.peek()' },
    ],
    fixable: true,
    cleanup: [[P, 'drop function app.peek()']],
  },
  {
    name: 'a user-defined LEAKPROOF function',
    plant: [[S, `create function public.lp(int) returns boolean leakproof language sql as 'select true'`]],
    expect: [{ check: 'function.leakproof', object: 'function lp(integer)' }],
    fixable: false,
    cleanup: [[S, 'drop function public.lp(int)']],
  },
  {
    name: 'PUBLIC may create in schema public',
    plant: [[S, 'grant create on schema public to public']],
    expect: [{ check: 'schema.public-create' }],
    fixable: true,
  },
  {
    name: "a tenant role granted a neighbour's schema (also caught by the probes)",
    plant: [[S, 'grant usage on schema t_au_s2 to tenant_au_s1; grant select on all tables in schema t_au_s2 to tenant_au_s1']],
    expect: [
      { check: 'schema.cross-tenant-access', object: 'schema t_au_s2' },
      { check: 'probe.tenant-role-cross-schema', object: 't_au_s2.comments' },
    ],
    fixable: true,
  },
  {
    name: "a tenant role member of another tenant's role",
    plant: [['postgres', 'grant tenant_au_s2 to tenant_au_s1']],
    expect: [{ check: 'schema.cross-tenant-access', object: 'role tenant_au_s2' }],
    fixable: true,
  },
  {
    name: 'default privileges granting to another tenant',
    plant: [[S, 'alter default privileges for role tenantctl in schema t_au_s2 grant select on tables to tenant_au_s1']],
    expect: [{ check: 'schema.default-privileges' }],
    fixable: true,
  },
  {
    name: 'a search_path through a schema PUBLIC can write',
    plant: [
      [S, 'grant create on schema public to public; alter role tenant_au_s1 in database tenant_schemas set search_path = t_au_s1, public'],
    ],
    expect: [
      { check: 'schema.writable-search-path', object: 'search_path of role tenant_au_s1 in database tenant_schemas' },
      { check: 'schema.public-create' },
    ],
    fixable: false,
    cleanup: [[S, 'alter role tenant_au_s1 in database tenant_schemas reset search_path; revoke create on schema public from public']],
  },
  {
    name: 'CONNECT to PUBLIC on a tenant database',
    plant: [['postgres', 'grant connect on database t_au_d1 to public']],
    expect: [
      { check: 'database.public-connect', object: 'database t_au_d1' },
      { check: 'probe.tenant-role-cross-database', object: 'database t_au_d1' },
    ],
    fixable: true,
  },
  {
    name: "a tenant role that can connect to another tenant's database",
    plant: [['postgres', 'grant connect on database t_au_d2 to tenant_au_d1']],
    expect: [
      { check: 'database.cross-tenant-connect', object: 'database t_au_d2' },
      { check: 'probe.tenant-role-cross-database', object: 'database t_au_d2' },
    ],
    fixable: true,
  },
  {
    name: 'a tenant-looking schema, database and role without a catalog row',
    plant: [
      [S, 'create schema t_ghost'],
      ['postgres', 'create database t_ghostdb'],
      ['postgres', 'create role tenant_ghost'],
    ],
    expect: [
      { check: 'catalog.orphan-placement', object: 'schema t_ghost' },
      { check: 'catalog.orphan-placement', object: 'database t_ghostdb' },
      { check: 'catalog.orphan-role', object: 'role tenant_ghost' },
    ],
    fixable: false,
    cleanup: [
      [S, 'drop schema t_ghost'],
      ['postgres', 'drop database t_ghostdb'],
      ['postgres', 'drop role tenant_ghost'],
    ],
  },
  {
    name: 'pool rows whose key belongs to no tenant',
    plant: [[P, `insert into app.workspaces (id, name) values ('${randomUUID()}', 'gone')`]],
    expect: [{ check: 'catalog.orphan-pool-rows', object: 'app.workspaces' }],
    fixable: false,
    cleanup: [[P, `delete from app.workspaces where name = 'gone'`]],
  },
  // Issue 17: the doors row-level security on keyed tables does not watch.
  {
    name: 'a table without the key, not declared shared',
    plant: [
      [
        P,
        'create table app.attachment_blobs (id int primary key, data bytea); grant select on app.attachment_blobs to app_user',
        'tenantctl',
      ],
    ],
    expect: [{ check: 'pool.keyless-table', object: 'app.attachment_blobs' }],
    fixable: false,
    cleanup: [[P, 'drop table app.attachment_blobs']],
  },
  {
    name: 'the key under another name (a column pointing at the tenant root)',
    plant: [
      [
        P,
        'create table app.webhooks (workspace_id uuid not null references app.workspaces (id), url text); grant select on app.webhooks to app_user',
        'tenantctl',
      ],
    ],
    expect: [
      { check: 'pool.key-renamed', object: 'app.webhooks.workspace_id' },
      { check: 'pool.keyless-table', object: 'app.webhooks' },
    ],
    fixable: false,
    cleanup: [[P, 'drop table app.webhooks']],
  },
  {
    name: 'a shared read-only table the serving role may write',
    plant: [[P, 'grant insert, update on app.task_statuses to app_user']],
    expect: [{ check: 'pool.shared-writable', object: 'app.task_statuses' }],
    fixable: true,
  },
  {
    name: 'a table in another schema readable by the serving role',
    plant: [
      [
        P,
        'create schema reports; create table reports.totals (n int); grant usage on schema reports to app_user; grant select on reports.totals to app_user',
        'tenantctl',
      ],
    ],
    expect: [{ check: 'pool.other-schema-readable', object: 'reports.totals' }],
    fixable: true,
    cleanup: [[P, 'drop schema reports cascade']],
  },
  {
    name: 'an exclusion constraint without the key',
    plant: [
      [
        P,
        'alter table app.tasks add column during tsrange; alter table app.tasks add constraint tasks_no_overlap exclude using gist (during with &&)',
        'tenantctl',
      ],
    ],
    expect: [{ check: 'pool.exclusion-without-key', object: 'constraint tasks_no_overlap on app.tasks' }],
    fixable: false,
    cleanup: [[P, 'alter table app.tasks drop constraint tasks_no_overlap; alter table app.tasks drop column during']],
  },
  {
    name: 'an escape-hatch permissive policy (a support mode setting)',
    plant: [[P, `create policy support on app.users for select using (current_setting('app.support_mode', true) = 'on')`]],
    expect: [{ check: 'pool.policy-without-key', object: 'policy support on app.users' }],
    fixable: true,
  },
  {
    name: 'a permissive policy matching keys by prefix (the empty setting sees every tenant)',
    plant: [[P, `create policy prefix on app.users for select using (tenant_id::text like current_setting('app.tenant_id', true) || '%')`]],
    expect: [
      { check: 'pool.foreign-permissive-policy', object: 'policy prefix on app.users' },
      { check: 'probe.empty-setting-read', object: 'app.users' },
    ],
    fixable: true,
  },
  {
    name: "the serving role a member of tenantctl's shard role",
    plant: [['postgres', 'grant tenantctl to app_user']],
    expect: [{ check: 'role.serving-member-of-admin', object: 'role app_user' }],
    fixable: true,
  },
  {
    name: 'large objects owned by the serving role',
    plant: [
      [
        P,
        `do $$ declare o oid; begin o := lo_from_bytea(0, 'secret'); execute format('alter large object %s owner to app_user', o); end $$`,
      ],
    ],
    expect: [{ check: 'pool.large-objects' }],
    fixable: false,
    cleanup: [[P, 'select lo_unlink(oid) from pg_largeobject_metadata']],
  },
  {
    name: 'per-value statistics kept on the tenant key',
    plant: [[P, 'alter table app.tasks alter column tenant_id set statistics -1', 'tenantctl']],
    expect: [{ check: 'pool.key-statistics', object: 'app.tasks.tenant_id' }],
    fixable: true,
  },
  {
    name: 'a table tenantctl cannot read blinds nothing else',
    plant: [
      [P, 'create table app.secret_notes (tenant_id uuid not null, body text)'],
      [P, 'grant truncate on app.tasks to app_user'],
    ],
    expect: [
      { check: 'audit.cannot-verify', object: 'app.secret_notes' },
      { check: 'pool.rls-disabled', object: 'app.secret_notes' },
      { check: 'pool.dangerous-grant', object: 'app.tasks' },
    ],
    fixable: false,
    cleanup: [
      [P, 'drop table app.secret_notes'],
      [P, 'revoke truncate on app.tasks from app_user'],
    ],
  },
  {
    name: 'a tenant role owning a large object outside its placement',
    // As on a cluster that lets tenants make large objects (dev clusters do not: closed-functions.ts).
    plant: [
      [
        'postgres',
        `grant execute on function lo_from_bytea(oid, bytea) to tenant_au_s1; set role tenant_au_s1; select lo_from_bytea(0, 'kept'); reset role`,
      ],
    ],
    expect: [{ check: 'role.tenant-owns-elsewhere', object: 'role tenant_au_s1' }],
    fixable: false,
    cleanup: [
      [
        'postgres',
        'select lo_unlink(oid) from pg_largeobject_metadata; revoke execute on function lo_from_bytea(oid, bytea) from tenant_au_s1',
      ],
    ],
  },
  {
    name: 'a function that takes search_path from its caller',
    plant: [[P, 'create function app.task_count() returns bigint language sql as $$select count(*) from app.tasks$$', 'tenantctl']],
    expect: [{ check: 'function.search-path-mutable', object: 'function app.task_count()' }],
    fixable: true,
    cleanup: [[P, 'drop function app.task_count()']],
  },
  {
    name: 'the maintenance database open to every tenant',
    plant: [['postgres', 'grant connect on database postgres to public']],
    expect: [{ check: 'database.control-plane-open', object: 'database postgres' }],
    fixable: false,
    cleanup: [['postgres', 'revoke connect on database postgres from public']],
  },
  {
    name: 'the tenant setting as a role default survives into every transaction',
    plant: [['postgres', `alter role app_user set app.tenant_id = '$A'`]],
    expect: [{ check: 'probe.setting-persists' }, { check: 'probe.no-setting-read', object: 'app.users' }],
    fixable: false,
    cleanup: [['postgres', 'alter role app_user reset app.tenant_id']],
  },
];

describe('each check finds its planted flaw; --fix removes what tenantctl manages', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const sub = (sql: string) => sql.replaceAll('$A', keys['au-p1']);
      for (const [db, sql, who] of c.plant) await (who ? af.as : af.su)('us1', db, sub(sql));
      try {
        const found = (await audit()).findings;
        for (const e of c.expect) {
          expect(
            found.some((f) => f.check === e.check && (e.object === undefined || f.object === e.object)),
            `${e.check} ${e.object ?? ''} in\n${summary(found).join('\n')}`,
          ).toBe(true);
        }
        const mine = found.filter((f) => c.expect.some((e) => e.check === f.check && !e.check.startsWith('probe.')));
        expect(mine.every((f) => f.severity && f.message && f.object)).toBe(true);
        if (c.fixable) {
          const fixes = await applyFixes(
            af.conns,
            found.filter((f) => f.fixable),
          );
          expect(fixes.filter((f) => f.status === 'failed')).toEqual([]);
          const after = (await audit()).findings;
          for (const e of c.expect.filter((x) => !c.cleanup || x.check.startsWith('pool.') || x.check.startsWith('probe.'))) {
            if (c.cleanup && e.check.startsWith('function.definer-search-path')) continue;
            expect(
              after.some((f) => f.check === e.check && (e.object === undefined || f.object === e.object)),
              `${e.check} still there after --fix:\n${summary(after).join('\n')}`,
            ).toBe(false);
          }
        }
      } finally {
        for (const [db, sql] of c.cleanup ?? []) await af.su('us1', db, sub(sql));
      }
      // Back to clean, so each case starts from the designed state.
      expect(summary((await audit()).findings)).toEqual([]);
    });
  }

  it('a fix on an object tenantctl does not own fails naming who can run it and the statement', async () => {
    // The superuser's view: the shard role may not alter it ("must be owner").
    await af.su('us1', P, 'create view app.su_users as select * from app.users; grant select on app.su_users to app_user');
    try {
      const found = (await audit()).findings.filter((f) => f.check === 'pool.view-owner-rights');
      expect(found.map((f) => f.object)).toEqual(['app.su_users']);
      const [fix] = await applyFixes(af.conns, found);
      expect(fix).toMatchObject({ status: 'failed', object: 'app.su_users' });
      expect(fix.error).toMatch(
        /must be owner .*: the role tenantctl connects as may not change it; its owner \(or a superuser\) can run: /,
      );
      expect(fix.error).toContain(found[0].fix);
    } finally {
      await af.su('us1', P, 'drop view app.su_users');
    }
  });
});

describe('catalog states and the command line', () => {
  it('a tenant stuck in failed, and one whose schema is gone', async () => {
    await updateTenant(af.db, 'au-s2', { status: 'failed', status_detail: 'planted' });
    await af.su('us1', S, 'alter schema t_au_s1 rename to t_au_s1_moved');
    try {
      const f = (await audit()).findings;
      expect(
        f.some((x) => x.check === 'catalog.stuck-tenant' && x.tenant === 'au-s2'),
        summary(f).join('\n'),
      ).toBe(true);
      expect(
        f.some((x) => x.check === 'catalog.placement-missing' && x.object === 'schema t_au_s1'),
        summary(f).join('\n'),
      ).toBe(true);
    } finally {
      await af.su('us1', S, 'alter schema t_au_s1_moved rename to t_au_s1');
      await updateTenant(af.db, 'au-s2', { status: 'active', status_detail: null });
    }
    expect(summary((await audit()).findings)).toEqual([]);
  });

  it('a tenant left deleting with no live command holding it is stuck at once', async () => {
    await updateTenant(af.db, 'au-s2', { status: 'deleting' });
    try {
      const f = (await audit()).findings;
      expect(
        f.some((x) => x.check === 'catalog.stuck-tenant' && x.tenant === 'au-s2'),
        summary(f).join('\n'),
      ).toBe(true);
    } finally {
      await updateTenant(af.db, 'au-s2', { status: 'active' });
    }
  });

  it('audit --json: the envelope, exit 1 at --fail-on, --fix needs --yes off a terminal, --fix --yes repairs', async () => {
    const clean = await cli(['audit', '--json'], { config: af.configFile });
    expect(clean.code, clean.stderr + clean.stdout.slice(0, 4000)).toBe(0);
    const doc = JSON.parse(clean.stdout);
    expect(doc).toMatchObject({ command: 'audit', ok: true, failOn: 'high', summary: { findings: 0 } });
    expect(clean.stdout + clean.stderr).not.toContain(af.fleet.password);

    await af.su('us1', P, 'grant truncate on app.tasks to app_user');
    const gated = await cli(['audit', '--json'], { config: af.configFile });
    expect(gated.code).toBe(1);
    expect(JSON.parse(gated.stdout).findings.map((f: Finding) => f.check)).toContain('pool.dangerous-grant');
    const lenient = await cli(['audit', '--fail-on', 'critical', '--json'], { config: af.configFile });
    expect(lenient.code).toBe(0);
    const noYes = await cli(['audit', '--fix'], { config: af.configFile });
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toContain('--yes');
    expect((await af.su('us1', P, `select has_table_privilege('app_user', 'app.tasks', 'TRUNCATE') as t`)).rows[0].t).toBe(true);
    const fixed = await cli(['audit', '--fix', '--yes', '--json'], { config: af.configFile });
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({ ok: true, before: { findings: 1 }, summary: { findings: 0 } });
    const bad = await cli(['audit', '--fail-on', 'severe'], { config: af.configFile });
    expect(bad.code).toBe(2);
  });
});
