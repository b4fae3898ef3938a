import type pg from 'pg';
import type { Config } from '../../config/types.js';
import { UsageError } from '../../errors.js';
import { scopedKeyColumn, scopedRuleParams } from '../scoped-rule.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The pool's tenant-key columns whose type is not `tenantKey.type`: the config's type changed
 * after the pool was made (tables are not retyped by a config edit). Every key then meets its
 * column in a comparison PostgreSQL refuses ("operator does not exist: uuid = bigint"), or, for a
 * schema tenant made meanwhile, a fleet of two key types that cannot move into each other.
 */
export async function poolKeyTypeMismatch(c: Queryable, schema: string, config: Pick<Config, 'tenantKey'>): Promise<string[]> {
  const { rows } = await c.query<{ t: string; col: string; type: string }>(
    `select c.relname as t, a.attname as col, format_type(a.atttypid, a.atttypmod) as type
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
        and a.attname = ${scopedKeyColumn('c', '$2', '$3')}
        and not (a.atttypid = any($4::regtype[]))
      order by c.relname`,
    [schema, ...scopedRuleParams(config), COMPATIBLE[config.tenantKey.type]],
  );
  return rows.map((r) => `${r.t}.${r.col} is ${r.type}`);
}

/** Column types a key of each config type compares with as it always did (an int key column under `bigint`, a varchar one under `text`). */
const COMPATIBLE: Record<Config['tenantKey']['type'], string[]> = {
  uuid: ['uuid'],
  bigint: ['bigint', 'integer', 'smallint', 'numeric'],
  text: ['text', 'character varying', 'character'],
};

/** Refuse, before anything is made, a pool whose key columns are not of the config's key type (exit 2). */
export async function assertPoolKeyType(c: Queryable, where: string, schema: string, config: Pick<Config, 'tenantKey'>): Promise<void> {
  const wrong = await poolKeyTypeMismatch(c, schema, config);
  if (wrong.length === 0) return;
  throw new UsageError(
    'CONFIG_INVALID',
    `tenantKey.type is ${config.tenantKey.type}, but the pool ${where} was made with another: ${wrong.slice(0, 3).join(', ')}${wrong.length > 3 ? `, and ${wrong.length - 3} more` : ''}; nothing was changed`,
    "put tenantKey.type back to the type the fleet was made with: a config edit does not retype the tables, and tenants of two key types cannot move into each other's pools",
  );
}
