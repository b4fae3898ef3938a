import type { MigrateEnv } from './migrate-env.js';

/** A tenant's catalog row, as the seeding and the tests read it. */
export type Tenant = {
  slug: string;
  key: string;
  model: string;
  shard: string;
  database_name: string;
  schema_name: string;
  status: string;
  schema_version: string;
};

export const tenant = async (e: MigrateEnv, slug: string) =>
  (await e.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst()) as Tenant | undefined;

/** Rows in every tenant-scoped table: a workspace, users, projects, tasks and comments. */
export async function seed(e: MigrateEnv, slug: string, n: number, tag = 'x'): Promise<void> {
  const t = (await tenant(e, slug))!;
  const s = `"${t.schema_name}"`;
  await e.q(
    t.shard,
    t.database_name,
    `
    insert into ${s}.workspaces (id, name) values ($1, $2);
    `
      .trim()
      .replace(/;$/, ''),
    [t.key, `ws ${slug}`],
  );
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${s}.users (tenant_id, id, email, display_name)
      select $1, md5($2 || i)::uuid, 'u' || i || '@ex.com', 'User ' || i || E'\\ttab\\nnewline ' || $2 from generate_series(1, $3) i`,
    [t.key, tag, Math.max(1, n / 10)],
  );
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${s}.projects (tenant_id, id, name, owner_id)
      select $1, md5('p' || $2 || i)::uuid, 'Project ' || i, md5($2 || 1)::uuid from generate_series(1, 5) i`,
    [t.key, tag],
  );
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${s}.tasks (tenant_id, id, project_id, title, status, due_on)
      select $1, md5('t' || $2 || i)::uuid, md5('p' || $2 || (1 + i % 5))::uuid, 'Task ' || i || ' ünï', 'todo', case when i % 3 = 0 then null else date '2026-01-01' + i end
        from generate_series(1, $3) i`,
    [t.key, tag, n],
  );
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${s}.comments (tenant_id, task_id, author_id, body)
      select $1, md5('t' || $2 || (1 + i % $3))::uuid, md5($2 || 1)::uuid, 'c\\' || i from generate_series(1, $3) i`,
    [t.key, tag, n],
  );
}

/**
 * The own-schema fixture's rows (test/fixtures/own-schema): the company (keyed by its own id),
 * 30 campaigns (identity ids, shared plans) and 400 clicks in a partitioned table.
 */
export async function seedOwnSchema(e: MigrateEnv, slug: string): Promise<void> {
  const t = (await tenant(e, slug))!;
  await e.q(t.shard, t.database_name, `insert into ${t.schema_name}.companies (id, name) values ($1, $2)`, [t.key, slug]);
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${t.schema_name}.campaigns (company_id, title, plan) select $1, 'c' || i, case when i % 2 = 0 then 'pro' else 'basic' end from generate_series(1, 30) i`,
    [t.key],
  );
  await e.q(
    t.shard,
    t.database_name,
    `insert into ${t.schema_name}.clicks (company_id, at, campaign) select $1, date '2026-06-01' + i, i from generate_series(1, 400) i`,
    [t.key],
  );
}
