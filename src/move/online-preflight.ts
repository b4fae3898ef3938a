import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { UsageError } from '../errors.js';
import { copyTables, type CopyScope } from '../copy/tables.js';
import { sourceConstraints } from '../copy/not-valid-constraints.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { CAPTURE_SCHEMA } from './capture/install.js';
import type { MovePlan } from './plan.js';
import { drivers } from '../placement/drivers.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** How an online move captures the tenant's writes while it copies. */
export type OnlineVia = 'replication' | 'triggers';

export interface OnlinePath {
  via: OnlineVia;
  /** Why logical replication is not the path (triggers only). */
  notReplication?: string;
}

/**
 * Which way an online move can go, checked before anything changes (read-only): the same model
 * at both ends (the tenant's tables keep their schema-qualified names; else exit 2), then
 * logical replication where the roles and settings allow it (replicationGaps), else trigger
 * capture where the source role may add triggers to the tenant's tables and create tenantctl's
 * capture schema (captureGaps, src/move/capture/). Neither: exit 2 naming every gap of both.
 */
export async function onlinePreflight(deps: { config: Config; fleet: Fleet }, plan: MovePlan): Promise<OnlinePath> {
  const { from, to } = plan;
  if (from.model !== to.model) {
    throw new UsageError(
      'ONLINE_CROSS_MODEL',
      `an online move keeps the tenant's tables at the same schema-qualified names, so it works only within one model (pool→pool, schema→schema, database→database); ${plan.tenant} would go from ${from.model} to ${to.model}; nothing was changed`,
      `run it offline: tenantctl move ${plan.tenant} --to-shard ${to.shard} --to-model ${to.model} --yes (writes are blocked while it copies)`,
    );
  }
  const repl = await replicationGaps(deps, plan);
  if (repl.problems.length === 0) return { via: 'replication' };
  const cap = await captureGaps(deps, plan);
  if (cap.problems.length === 0) return { via: 'triggers', notReplication: repl.problems.join('; ') };
  throw new UsageError(
    'ONLINE_UNAVAILABLE',
    `an online move of ${plan.tenant} from ${from.shard} to ${to.shard} is not possible: by logical replication: ${repl.problems.join('; ')}; by trigger capture: ${cap.problems.join('; ')}; nothing was changed`,
    `${[...cap.fixes, ...repl.fixes].join('; ')}; or run the move without --online (writes are blocked while it copies)`,
  );
}

/**
 * Trigger capture needs, at the source only: the TRIGGER privilege on every tenant-scoped table
 * (an owner has it) and CREATE on the database for the capture schema (or that schema already
 * tenantctl's). No replication role, slot or subscription; the target is an offline move's.
 */
async function captureGaps(deps: { config: Config; fleet: Fleet }, plan: MovePlan): Promise<Gaps> {
  const { from } = plan;
  return deps.fleet.withClient(from.shard, from.database, async (c) => {
    const tables = await copyTables(c, from.schema, deps.config);
    const { rows } = await c.query<{ role: string; create: boolean; denied: string[] }>(
      `select current_user as role,
              has_database_privilege(current_database(), 'CREATE')
                or exists (select 1 from pg_namespace where nspname = $3 and pg_has_role(nspowner, 'USAGE')) as create,
              coalesce((select array_agg(t order by t) from unnest($2::text[]) t
                         where not has_table_privilege(format('%I.%I', $1::text, t), 'TRIGGER')), '{}') as denied`,
      [from.schema, tables.map((t) => t.table), CAPTURE_SCHEMA],
    );
    const r = rows[0];
    const problems: string[] = [];
    const fixes: string[] = [];
    if (!r.create) {
      problems.push(`role ${r.role} may not create the ${CAPTURE_SCHEMA} schema in ${from.database} on ${from.shard}`);
      fixes.push(`GRANT CREATE ON DATABASE ${from.database} TO ${r.role}`);
    }
    if (r.denied.length) {
      problems.push(`role ${r.role} may not add triggers to ${r.denied.join(', ')} on ${from.shard}`);
      fixes.push(`make ${r.role} the owner of the tenant's tables (or GRANT TRIGGER on them)`);
    }
    return { problems, fixes };
  });
}

interface Gaps {
  problems: string[];
  fixes: string[];
}

/**
 * What logical replication needs beyond an offline move:
 *  - at the source: `wal_level = logical`; a role that may stream changes (REPLICATION or
 *    superuser), owns the tenant's tables (only an owner may publish a table) and may create
 *    in the database; two free replication slots (the move's, one table copy at a time at least);
 *    for a pool tenant, every table's replica identity covering the key column (a row filter on
 *    the key is only allowed for UPDATE and DELETE then);
 *  - at the target: a role that may create subscriptions (superuser on PostgreSQL 15; member of
 *    pg_create_subscription with CREATE on the database on 16 and newer).
 */
async function replicationGaps(deps: { config: Config; fleet: Fleet }, plan: MovePlan): Promise<Gaps> {
  const { from, to } = plan;
  const problems: string[] = [];
  const fixes = new Set<string>();
  const src = await deps.fleet.withClient(from.shard, from.database, (c) =>
    sourceFacts(c, { model: from.model, schema: from.schema, key: plan.key }, deps.config),
  );
  if (src.wal !== 'logical') {
    problems.push(`wal_level on ${from.shard} is ${src.wal}, not logical`);
    fixes.add(`set wal_level = logical on ${from.shard} (postgresql.conf or ALTER SYSTEM) and restart it`);
  }
  if (!src.sup && !src.repl) {
    problems.push(`role ${src.role} on ${from.shard} has neither REPLICATION nor superuser, so it cannot stream the tenant's changes`);
    fixes.add(`ALTER ROLE ${src.role} REPLICATION on ${from.shard}`);
  }
  if (!src.sup && src.notOwned.length) {
    problems.push(`role ${src.role} does not own ${src.notOwned.join(', ')} on ${from.shard} (only a table's owner may publish it)`);
    fixes.add(`make ${src.role} the owner of the tenant's tables on ${from.shard}`);
  }
  if (!src.create) {
    problems.push(`role ${src.role} may not create in database ${from.database} on ${from.shard} (a publication needs it)`);
    fixes.add(`GRANT CREATE ON DATABASE ${from.database} TO ${src.role}`);
  }
  if (src.freeSlots < 2) {
    problems.push(
      `${from.shard} has ${src.freeSlots} free replication slot${src.freeSlots === 1 ? '' : 's'} (max_replication_slots), 2 are needed`,
    );
    fixes.add(`raise max_replication_slots on ${from.shard} (restart), or drop unused slots`);
  }
  // Only a row-filtered publication (shared tables: the tenant is its key, replication.ts) needs
  // the key column in the replica identity; a placement of its own publishes whole tables.
  for (const t of src.identity) {
    if (t.covers || drivers[from.model].keyFilter(t.keyColumn, deps.config.tenantKey.type, plan.key) === null) continue;
    problems.push(
      `${from.schema}.${t.table}'s replica identity (${t.ident}) does not include the tenant-key column ${t.keyColumn}, so PostgreSQL cannot publish its updates and deletes filtered by the tenant's key`,
    );
    // Not REPLICA IDENTITY FULL on the operator's behalf: it makes every update and delete of
    // every tenant of the shared table log whole old rows, a cost for the fleet, not this move.
    fixes.add(`include ${t.keyColumn} in the primary key (or the replica identity index) of ${t.table} in a migration`);
  }
  if (src.brokenChecks.length) {
    // COPY checks every row it writes, NOT VALID or not, and the apply worker's replica role does not switch checks off.
    problems.push(
      `the tenant's rows break NOT VALID check constraint(s) ${src.brokenChecks.join(', ')}, and logical replication's table copy checks every row it writes`,
    );
    fixes.add('fix those rows at the source');
  }
  // The target database may not exist yet (a new database tenant, a shard's first pool tenant).
  const tgt = await deps.fleet.withClient(to.shard, ADMIN_DATABASE, (c) =>
    c
      .query<{ role: string; sup: boolean; num: number; sub: boolean; create: boolean; workers: number }>(
        `select current_user as role, r.rolsuper as sup, current_setting('server_version_num')::int as num,
                exists (select 1 from pg_roles g where g.rolname = 'pg_create_subscription' and pg_has_role(current_user, g.oid, 'member')) as sub,
                case when exists (select 1 from pg_database where datname = $1) then has_database_privilege($1, 'CREATE')
                     else r.rolcreatedb end as create,
                current_setting('max_logical_replication_workers')::int as workers
           from pg_roles r where r.rolname = current_user`,
        [to.database],
      )
      .then((r) => r.rows[0]),
  );
  if (!tgt.sup && !(tgt.num >= 160000 && tgt.sub && tgt.create)) {
    problems.push(
      tgt.num >= 160000
        ? `role ${tgt.role} on ${to.shard} may not create subscriptions (not a member of pg_create_subscription with CREATE on ${to.database})`
        : `role ${tgt.role} on ${to.shard} is not a superuser (PostgreSQL 15 allows CREATE SUBSCRIPTION to superusers only)`,
    );
    fixes.add(
      tgt.num >= 160000
        ? `GRANT pg_create_subscription TO ${tgt.role} on ${to.shard}`
        : `connect tenantctl to ${to.shard} as a superuser for online moves`,
    );
  }
  if (tgt.workers < 1) {
    problems.push(`max_logical_replication_workers is 0 on ${to.shard}`);
    fixes.add(`raise max_logical_replication_workers on ${to.shard} (restart)`);
  }
  return { problems, fixes: [...fixes] };
}

interface SourceFacts {
  role: string;
  sup: boolean;
  repl: boolean;
  wal: string;
  create: boolean;
  freeSlots: number;
  notOwned: string[];
  identity: { table: string; keyColumn: string; ident: string; covers: boolean }[];
  /** NOT VALID check constraints the tenant's rows break ("table.name (rows)"). */
  brokenChecks: string[];
}

async function sourceFacts(c: Q, scope: CopyScope, config: Config): Promise<SourceFacts> {
  const { schema } = scope;
  const tables = await copyTables(c, schema, config);
  const broken = (await sourceConstraints(c, scope, tables, config.tenantKey.type)).filter((k) => k.type === 'check' && k.violatingRows);
  const who = await c.query<{ role: string; sup: boolean; repl: boolean; wal: string; create: boolean; free: number }>(
    `select current_user as role, r.rolsuper as sup, r.rolreplication as repl, current_setting('wal_level') as wal,
            has_database_privilege(current_database(), 'CREATE') as create,
            current_setting('max_replication_slots')::int - (select count(*)::int from pg_replication_slots) as free
       from pg_roles r where r.rolname = current_user`,
  );
  // Replica identity: d = the primary key, i = a chosen index, f = the whole row, n = nothing.
  const { rows } = await c.query<{ table: string; owned: boolean; ident: string; cols: string[] | null }>(
    `select c.relname as table, pg_has_role(current_user, c.relowner, 'USAGE') as owned,
            c.relreplident as ident,
            (select array_agg(a.attname::text) from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
              where i.indrelid = c.oid and ((c.relreplident = 'd' and i.indisprimary) or (c.relreplident = 'i' and i.indisreplident))) as cols
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2)`,
    [schema, tables.map((t) => t.table)],
  );
  const byName = new Map(rows.map((r) => [r.table, r]));
  const w = who.rows[0];
  const names: Record<string, string> = { d: 'its primary key', i: 'its replica identity index', f: 'FULL', n: 'NOTHING' };
  return {
    role: w.role,
    sup: w.sup,
    repl: w.repl,
    wal: w.wal,
    create: w.create,
    freeSlots: w.free,
    notOwned: tables.filter((t) => !byName.get(t.table)?.owned).map((t) => t.table),
    brokenChecks: broken.map((k) => `${k.table}.${k.name} (${k.violatingRows} rows)`),
    identity: tables.map((t) => {
      const r = byName.get(t.table);
      const ident = r?.ident ?? 'n';
      const covers = ident === 'f' || (ident !== 'n' && (r?.cols ?? []).includes(t.keyColumn));
      return { table: t.table, keyColumn: t.keyColumn, ident: names[ident] ?? ident, covers };
    }),
  };
}
