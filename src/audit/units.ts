import type { ShardClient } from '../fleet/shard-connections.js';
import { POOL_SCHEMA } from '../placement/naming.js';
import { byShape, tenantRole } from '../placement/placement.js';
import { qualified } from '../sql.js';
import { crossTenantAcl, defaultPrivilegeChecks, publicCreateCheck, searchPathChecks, type OwnedSchema } from './acl-checks.js';
import { asRole, attempt, rolledBack } from './as-role.js';
import { clusterChecks, placed } from './cluster-checks.js';
import { functionChecks } from './function-checks.js';
import { sharedLargeObjects } from './large-object-checks.js';
import { orphanDefaultPrivileges } from './orphan-acl-checks.js';
import { extensionsInTenantSchemas } from './extension-checks.js';
import { limitChecks } from './limit-checks.js';
import { placementSharedWritable } from './placement-shared-checks.js';
import { tablesOutsideSchema } from './tables-outside-checks.js';
import { poolChecks, roleExists, scopedTables } from './pool-checks.js';
import { poolProbes, probeKey, probeRows } from './pool-probe.js';
import { finding } from './registry.js';
import { atOf, SHARING_FAMILIES } from './sharing-checks.js';
import type { AuditEnv, AuditUnit, Finding } from './types.js';
import type { TenantRow } from '../catalog/tables.js';

/**
 * One unit of the audit on one connection (the caller holds it): what is checked depends on the
 * kind of unit. Pool probes open their serving-role connection themselves, after this returns.
 */
export async function auditUnit(c: ShardClient, unit: AuditUnit, env: AuditEnv, probes: boolean): Promise<UnitResult> {
  const serving = (await roleExists(c, env.config.servingRole.name)) ? env.config.servingRole.name : null;
  switch (unit.kind) {
    case 'cluster':
      return { findings: [...(await clusterChecks(c, unit, env, probes)), ...(await limitChecks(c, unit, env))] };
    case 'shared-tables':
      return sharedTablesUnit(c, unit, env, probes, serving);
    case 'shared-database':
      return sharedDatabaseUnit(c, unit, env, probes, serving);
    case 'own-database':
      return ownDatabaseUnit(c, unit, env, serving);
  }
}

type UnitResult = { findings: Finding[]; poolProbe?: () => Promise<Finding[]> };

/** The pool target: its tables' row-level security, functions, orphan rows, declared sharing; the probes prepared. */
async function sharedTablesUnit(
  c: ShardClient,
  unit: AuditUnit,
  env: AuditEnv,
  probes: boolean,
  serving: string | null,
): Promise<UnitResult> {
  // A table tenantctl may not read is a finding of its own, and is left out of the checks
  // that read rows; every other check of the unit still reports (a family that fails is one
  // finding, not a failed unit).
  const blind = await unreadableTables(c, POOL_SCHEMA);
  const seen = (t: { table: string }) => !blind.some((b) => b.table === t.table);
  const at = atOf(unit);
  const findings = [
    ...blind.map((b) =>
      finding('audit.cannot-verify', {
        ...at,
        object: `${POOL_SCHEMA}.${b.table}`,
        message: `cannot verify ${POOL_SCHEMA}.${b.table}: it is owned by ${b.owner} and tenantctl's role may not read it, so its rows (orphans, probes) are not checked`,
        fix: `grant select on ${qualified(POOL_SCHEMA, b.table)} to current_user; -- as ${b.owner}, or make tenantctl's role its owner`,
      }),
    ),
    ...(await guarded(at, 'pool schema', () => poolSchemaPresent(c, unit))),
    ...(await guarded(at, 'row-level security', () => poolChecks(c, unit, env, POOL_SCHEMA))),
    ...(await guarded(at, 'functions', () => functionChecks(c, unit, serving, () => null))),
    ...(await guarded(at, 'orphan rows', () => orphanPoolRows(c, unit, env, seen))),
    ...(await guarded(at, 'tables outside the schema', () => tablesOutsideSchema(c, at, POOL_SCHEMA, 'pool', env.config))),
  ];
  for (const f of SHARING_FAMILIES) findings.push(...(await guarded(at, f.name, () => f.run(c, at, env, POOL_SCHEMA, serving))));
  if (!probes || !serving) return { findings };
  const tenants = unit.tenants.filter(placed);
  const onShard = neighbours(unit, env).filter(placed);
  // A suspended tenant's rows raise for the serving role (src/placement/pool/suspend.ts): probe as active ones.
  const a = (tenants.find((t) => t.status !== 'suspended') ?? tenants[0])?.key;
  if (!a) return { findings };
  const b = onShard.find((t) => t.key !== a && t.status !== 'suspended')?.key ?? probeKey(env.config);
  const tables = (await scopedTables(c, POOL_SCHEMA, env, serving)).filter((t) => !t.partition && seen(t));
  const rows = await probeRows(c, POOL_SCHEMA, tables, a, env.config);
  return { findings, poolProbe: () => poolProbes(env.fleet, env.config, unit, POOL_SCHEMA, rows, { a, b }) };
}

/** Schema tenants of one database (a chunk): database-wide checks once (chunk 0), then each tenant's ACLs and probes. */
async function sharedDatabaseUnit(
  c: ShardClient,
  unit: AuditUnit,
  env: AuditEnv,
  probes: boolean,
  serving: string | null,
): Promise<UnitResult> {
  const at = { shard: unit.shard, database: unit.database };
  const all = neighbours(unit, env).filter((t) => t.database_name === unit.database);
  const owned: OwnedSchema[] = all.map((t) => ({ schema: t.schema_name, slug: t.slug, role: tenantRole(t)! }));
  const mine = new Set(unit.tenants.map((t) => t.schema_name));
  const findings: Finding[] = [];
  // Database-wide checks run once, with the database's first chunk.
  if (unit.id.endsWith('#0')) {
    const roleToSlug = new Map(owned.map((o) => [o.role, o.slug]));
    const tenantOf = (s: string) => owned.find((o) => o.schema === s)?.slug ?? null;
    findings.push(
      ...(await publicCreateCheck(c, at)),
      ...(await defaultPrivilegeChecks(c, at, owned)),
      ...(await orphanDefaultPrivileges(c, at, roleToSlug)),
      ...(await searchPathChecks(c, at, roleToSlug, env.config.servingRole.name)),
      ...(await functionChecks(c, unit, serving, tenantOf)),
      ...(await schemaPlacements(c, unit, env)),
      ...(await sharedLargeObjects(c, at, owned)),
      ...(await extensionsInTenantSchemas(c, at, owned)),
      // Every t_* schema is left out by tablesLeftBehind itself: no one tenant's schema to name.
      ...(await tablesOutsideSchema(c, at, '', 'schema', env.config)),
    );
  }
  const chunk = owned.filter((o) => mine.has(o.schema));
  findings.push(...(await crossTenantAcl(c, at, chunk)), ...(await placementSharedWritable(c, at, chunk, env.config)));
  if (probes) findings.push(...(await schemaProbes(c, unit, owned)));
  return { findings };
}

/** A tenant's own database: its schema there, ACLs, default privileges, search paths, functions. */
async function ownDatabaseUnit(c: ShardClient, unit: AuditUnit, env: AuditEnv, serving: string | null): Promise<UnitResult> {
  const at = { shard: unit.shard, database: unit.database };
  const t = unit.tenants[0];
  const owned: OwnedSchema[] = [{ schema: t.schema_name, slug: t.slug, role: tenantRole(t)! }];
  const present = await c.query('select 1 from pg_namespace where nspname = $1', [t.schema_name]);
  return {
    findings: [
      ...(present.rowCount
        ? []
        : [
            finding('catalog.placement-missing', {
              ...at,
              tenant: t.slug,
              object: `schema ${t.database_name}.${t.schema_name}`,
              message: `tenant ${t.slug} is ${t.status} but schema ${t.schema_name} is missing from its database`,
              fix: null,
            }),
          ]),
      ...(await crossTenantAcl(c, at, owned)),
      ...(await placementSharedWritable(c, at, owned, env.config)),
      ...(await defaultPrivilegeChecks(c, at, owned)),
      ...(await orphanDefaultPrivileges(c, at, new Map([[tenantRole(t)!, t.slug]]))),
      ...(await searchPathChecks(c, at, new Map([[tenantRole(t)!, t.slug]]), env.config.servingRole.name)),
      ...(await functionChecks(c, unit, serving, () => t.slug)),
      ...(await tablesOutsideSchema(c, { ...at, tenant: t.slug }, t.schema_name, 'database', env.config)),
    ],
  };
}

/** Every catalog tenant of the unit's shard (selected or not) whose placement is of the unit's shape (a cluster unit: all of them). */
function neighbours(unit: AuditUnit, env: AuditEnv): TenantRow[] {
  if (unit.kind === 'cluster') return env.allTenants.filter((t) => t.shard === unit.shard);
  return byShape(env.allTenants.filter((t) => t.shard === unit.shard))[unit.kind];
}

/** Tables of the schema tenantctl's role may not SELECT (created by a DBA, owned by the serving role). */
async function unreadableTables(c: ShardClient, schema: string): Promise<{ table: string; owner: string }[]> {
  const { rows } = await c.query<{ table: string; owner: string }>(
    `select c.relname as table, pg_get_userbyid(c.relowner) as owner
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') and not has_table_privilege(c.oid, 'SELECT')
      order by 1`,
    [schema],
  );
  return rows;
}

/**
 * One check family, run so that its failure (an object it may not read, say) is a finding of
 * its own rather than the loss of every finding of the unit. Connection failures still fail it.
 */
async function guarded(at: ReturnType<typeof atOf>, family: string, run: () => Promise<Finding[]>): Promise<Finding[]> {
  try {
    return await run();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    // SQLSTATE class 42 (insufficient privilege, undefined object) and 0A (not supported): the
    // object is the problem, not the connection.
    if (typeof code !== 'string' || !/^(42|0A)/.test(code)) throw err;
    return [
      finding('audit.cannot-verify', {
        ...at,
        object: `${at.database} (${family})`,
        message: `cannot verify ${family} in ${at.database}: ${(err as Error).message}`,
        fix: null,
      }),
    ];
  }
}

async function poolSchemaPresent(c: ShardClient, unit: AuditUnit): Promise<Finding[]> {
  const r = await c.query('select 1 from pg_namespace where nspname = $1', [POOL_SCHEMA]);
  if (r.rowCount) return [];
  return unit.tenants.filter(placed).map((t) =>
    finding('catalog.placement-missing', {
      shard: unit.shard,
      database: unit.database,
      tenant: t.slug,
      object: `schema ${unit.database}.${POOL_SCHEMA}`,
      message: `pool tenant ${t.slug} is ${t.status} but the pool schema ${POOL_SCHEMA} is missing on ${unit.shard}`,
      fix: null,
    }),
  );
}

/** Rows of the pool whose key no tenant of this shard has (tenantctl sees every row: owner or tenantctl_admin). */
async function orphanPoolRows(
  c: ShardClient,
  unit: AuditUnit,
  env: AuditEnv,
  readable: (t: { table: string }) => boolean,
): Promise<Finding[]> {
  // A switched move's source keeps its rows (fenced) until move complete or rollback: not orphans.
  const keptKeys = env.kept
    .filter((k) => k.shard === unit.shard && k.database === unit.database)
    .flatMap((k) => env.allTenants.filter((t) => t.slug === k.tenant).map((t) => t.key));
  const keys = [...neighbours(unit, env).map((t) => t.key), ...keptKeys];
  const tables = (await scopedTables(c, POOL_SCHEMA, env, null)).filter((t) => !t.partition && readable(t));
  const out: Finding[] = [];
  for (const t of tables) {
    const r = await c.query<{ n: number; sample: string[] }>(
      `select count(*)::int as n, (array_agg(distinct k::text))[1:3] as sample
         from (select ${`"${t.column.replace(/"/g, '""')}"`} as k from ${qualified(POOL_SCHEMA, t.table)}) x
        where not (k = any($1::${env.config.tenantKey.type}[]))`,
      [keys],
    );
    if (r.rows[0].n > 0) {
      out.push(
        finding('catalog.orphan-pool-rows', {
          shard: unit.shard,
          database: unit.database,
          tenant: null,
          object: `${POOL_SCHEMA}.${t.table}`,
          message: `${r.rows[0].n} row(s) of ${POOL_SCHEMA}.${t.table} carry keys no tenant of ${unit.shard} has (e.g. ${r.rows[0].sample.join(', ')}): a deleted or moved tenant's leftovers, or a key reused for a new tenant would expose them`,
          fix: null,
        }),
      );
    }
  }
  return out;
}

/** Tenant schemas in the database against the catalog: missing ones, and ones no catalog row names. */
async function schemaPlacements(c: ShardClient, unit: AuditUnit, env: AuditEnv): Promise<Finding[]> {
  const at = { shard: unit.shard, database: unit.database };
  const present = new Set(
    (await c.query<{ n: string }>(`select nspname as n from pg_namespace where nspname like 't\\_%'`)).rows.map((r) => r.n),
  );
  const known = new Set([
    ...env.allTenants.filter((t) => t.shard === unit.shard && t.database_name === unit.database).map((t) => t.schema_name),
    ...env.kept.filter((k) => k.shard === unit.shard && k.database === unit.database).map((k) => k.schema),
  ]);
  const out: Finding[] = [];
  const selected = neighbours(unit, env).filter((t) => t.database_name === unit.database && placed(t));
  const chosen = new Set(unit.selectedInDatabase ?? []);
  for (const t of selected) {
    if (!chosen.has(t.slug) || present.has(t.schema_name)) continue;
    out.push(
      finding('catalog.placement-missing', {
        ...at,
        tenant: t.slug,
        object: `schema ${t.schema_name}`,
        message: `tenant ${t.slug} is ${t.status} but its schema ${t.schema_name} is missing from ${unit.database}`,
        fix: null,
      }),
    );
  }
  for (const s of present) {
    if (known.has(s)) continue;
    out.push(
      finding('catalog.orphan-placement', {
        ...at,
        tenant: null,
        object: `schema ${s}`,
        message: `schema ${s} in ${unit.database} looks like a tenant's but no catalog row names it (a deleted tenant recreated by a migration run, or leftovers)`,
        fix: `-- check what it holds, then: drop schema ${`"${s.replace(/"/g, '""')}"`} cascade;`,
      }),
    );
  }
  return out;
}

/**
 * As each tenant's role (rolled back): which other tenant schemas may it use, and can it read a
 * table of them — always tried on its neighbour (the next tenant of the database), and on every
 * schema the privilege sweep reports.
 */
async function schemaProbes(c: ShardClient, unit: AuditUnit, owned: OwnedSchema[]): Promise<Finding[]> {
  const out: Finding[] = [];
  const tenants = unit.tenants.filter(placed);
  if (tenants.length === 0 || owned.length < 2) return out;
  const firstTable = new Map(
    (
      await c.query<{ nsp: string; rel: string }>(
        `select n.nspname as nsp, min(c.relname) as rel from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') group by 1`,
        [owned.map((o) => o.schema)],
      )
    ).rows.map((r) => [r.nsp, r.rel]),
  );
  const order = owned.map((o) => o.schema).sort();
  await rolledBack(c, async () => {
    for (const t of tenants) {
      const role = tenantRole(t)!;
      const i = order.indexOf(t.schema_name);
      const neighbour = order[(i + 1) % order.length];
      await asRole(c, role, async () => {
        const swept = await c.query<{ n: string }>(
          `select nspname as n from pg_namespace where nspname = any($1::text[]) and nspname <> $2 and has_schema_privilege(oid, 'USAGE')`,
          [order, t.schema_name],
        );
        const candidates = new Set([neighbour, ...swept.rows.map((r) => r.n)]);
        candidates.delete(t.schema_name);
        for (const s of candidates) {
          const rel = firstTable.get(s);
          if (!rel) continue;
          const r = await attempt(c, `select 1 from ${qualified(s, rel)} limit 1`);
          if (r.code === null) {
            const other = owned.find((o) => o.schema === s)!;
            out.push(
              finding('probe.tenant-role-cross-schema', {
                shard: unit.shard,
                database: unit.database,
                tenant: other.slug,
                object: `${s}.${rel}`,
                message: `probe: as ${role} (tenant ${t.slug}), reading ${s}.${rel} of tenant ${other.slug} succeeded`,
                fix: null,
              }),
            );
          }
        }
      });
    }
  });
  return out;
}
