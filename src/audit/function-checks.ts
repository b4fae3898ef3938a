import { OWN_DEFINER_FUNCTION_SQL } from '../placement/pool/fence-schema.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { ident } from '../sql.js';
import { finding } from './registry.js';
import type { AuditUnit, Finding } from './types.js';

/**
 * Every model, per database: SECURITY DEFINER functions that the serving role or PUBLIC can
 * execute (they run with their owner's rights, past row-level security and grants) or that leave
 * search_path to the caller; user-defined LEAKPROOF functions (the planner runs them before
 * policies, so they can see rows the policies would hide). Extension functions are left out.
 */
export async function functionChecks(
  c: ShardClient,
  unit: AuditUnit,
  serving: string | null,
  tenantOf: (schema: string) => string | null,
): Promise<Finding[]> {
  const res = await c.query<{
    sig: string;
    nsp: string;
    owner: string;
    definer: boolean;
    leakproof: boolean;
    pinned_path: boolean;
    public_exec: boolean;
    serving_exec: boolean;
  }>(
    `select p.oid::regprocedure::text as sig, n.nspname as nsp, pg_get_userbyid(p.proowner) as owner,
            p.prosecdef as definer, p.proleakproof as leakproof,
            exists (select 1 from unnest(p.proconfig) cfg where cfg like 'search\\_path=%') as pinned_path,
            has_function_privilege('public', p.oid, 'EXECUTE') as public_exec,
            case when $1::text is null then false else has_function_privilege($1::text, p.oid, 'EXECUTE') end as serving_exec
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
        and (p.prosecdef or p.proleakproof or (p.prokind in ('f', 'p') and n.nspname <> 'tenantctl' and n.nspname not like 'tenantctl\\_%'
             and not exists (select 1 from unnest(p.proconfig) cfg where cfg like 'search\\_path=%')))
        and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
        and not ${OWN_DEFINER_FUNCTION_SQL}
      order by 1`,
    [serving],
  );
  const out: Finding[] = [];
  for (const f of res.rows) {
    const at = { shard: unit.shard, database: unit.database, tenant: tenantOf(f.nsp), object: `function ${f.sig}` };
    if (f.definer && (f.public_exec || f.serving_exec)) {
      const who = [f.public_exec ? 'PUBLIC' : null, f.serving_exec && !f.public_exec ? serving : null].filter(Boolean).join(', ');
      const from = ['public', ...(serving ? [ident(serving)] : [])].join(', ');
      out.push(
        finding('function.definer-executable', {
          ...at,
          message: `SECURITY DEFINER function ${f.sig} runs as ${f.owner} and ${who} can execute it: it reads and writes past row-level security and grants`,
          fix: `revoke execute on function ${f.sig} from ${from};`,
        }),
      );
    }
    if (f.definer && !f.pinned_path) {
      out.push(
        finding('function.definer-search-path', {
          ...at,
          message: `SECURITY DEFINER function ${f.sig} does not pin search_path: a caller who can create objects in a schema on its path runs code as ${f.owner}`,
          fix: `alter function ${f.sig} set search_path = pg_catalog, ${ident(f.nsp)}, pg_temp;`,
        }),
      );
    }
    if (!f.definer && !f.pinned_path) {
      out.push(
        finding('function.search-path-mutable', {
          ...at,
          message: `function ${f.sig} takes search_path from its caller: a caller with its own objects earlier on the path changes what it runs (low: it runs with the caller's rights)`,
          fix: `alter function ${f.sig} set search_path = pg_catalog, ${ident(f.nsp)}, pg_temp;`,
        }),
      );
    }
    if (f.leakproof) {
      out.push(
        finding('function.leakproof', {
          ...at,
          message: `user-defined function ${f.sig} is marked LEAKPROOF: it may run on rows before the policies filter them, so whatever it raises or logs can leak other tenants' values`,
          fix: `alter function ${f.sig} not leakproof; -- needs a superuser`,
        }),
      );
    }
  }
  return out;
}
