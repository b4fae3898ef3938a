import type pg from 'pg';
import { TenantctlError, type ErrorCode } from '../errors.js';
import { scopeWhere } from '../placement/placement.js';
import { ident, qualified } from '../sql.js';
import { brokenBy } from './fk-check-sql.js';
import { foreignKeysOf } from './fk-check.js';
import type { CopyScope, CopyTable } from './tables.js';

type Q = Pick<pg.ClientBase, 'query'>;

/**
 * Constraints added `NOT VALID` (pg_constraint.convalidated = false) hold for new rows only: rows
 * that were there before may break them. PostgreSQL checks every row a COPY or INSERT writes, so
 * loading such rows elsewhere (a restore, a move) fails unless the load does what pg_dump does:
 * the data first, the constraint added back `NOT VALID` after it. This file reads what the source
 * has (kept in a backup's manifest) and holds the constraints a load would trip over.
 */

export type ConstraintKind = 'check' | 'foreign key';

/** A check or foreign-key constraint of a tenant table, as the source has it. */
export interface ConstraintState {
  table: string;
  name: string;
  type: ConstraintKind;
  /** pg_constraint.convalidated: false for a constraint added NOT VALID and never validated. */
  valid: boolean;
  /** NOT VALID ones only: the tenant's rows at the source that break it (copied as they are). */
  violatingRows?: number;
}

interface Present extends ConstraintState {
  /** pg_get_constraintdef with every name schema-qualified ("… NOT VALID" when not validated). */
  def: string;
  /** A check constraint's expression (columns unqualified). */
  expr: string | null;
}

const same = (a: { table: string; name: string }, b: { table: string; name: string }) => a.table === b.table && a.name === b.name;

/**
 * The check and foreign-key constraints of these tables of `schema` (all tables when none are
 * given). Partitions' inherited copies are left out: their parent's stands for them, and dropping
 * or adding it there reaches them.
 */
async function present(c: Q, schema: string, tables?: string[]): Promise<Present[]> {
  const path = (await c.query<{ p: string }>(`select current_setting('search_path') as p`)).rows[0].p;
  // An empty search path makes pg_get_constraintdef qualify what it names: a definition re-added
  // later means the same whatever the search path is then.
  await c.query(`select set_config('search_path', '', true)`);
  const { rows } = await c.query<Present>(
    `select cl.relname as table, k.conname as name, case k.contype when 'c' then 'check' else 'foreign key' end as type,
            k.convalidated as valid, pg_get_constraintdef(k.oid) as def,
            case k.contype when 'c' then pg_get_expr(k.conbin, k.conrelid) end as expr
       from pg_constraint k join pg_class cl on cl.oid = k.conrelid join pg_namespace n on n.oid = cl.relnamespace
      where n.nspname = $1 and k.contype in ('c', 'f') and k.conislocal and k.conparentid = 0
        and ($2::text[] is null or cl.relname = any($2))
      order by cl.relname, k.conname`,
    [schema, tables ?? null],
  );
  await c.query(`select set_config('search_path', $1, true)`, [path]);
  return rows;
}

/**
 * What the source has: every check and foreign-key constraint of the tenant's tables with its
 * convalidated, and for the NOT VALID ones how many of the tenant's rows break them (one count
 * per such constraint, in the caller's snapshot). A backup keeps this in its manifest; a move
 * reads it from its source's snapshot.
 *
 * @example
 *   await sourceConstraints(c, { model: 'pool', schema: 'app', key }, tables, 'uuid')
 *   // [{ table: 'users', name: 'users_no_u1', type: 'check', valid: false, violatingRows: 1 }, …]
 */
export async function sourceConstraints(c: Q, scope: CopyScope, tables: CopyTable[], keyType: string): Promise<ConstraintState[]> {
  const byTable = new Map(tables.map((t) => [t.table, t]));
  const all = await present(c, scope.schema, [...byTable.keys()]);
  const notValidFks = all.some((k) => !k.valid && k.type === 'foreign key')
    ? await foreignKeysOf(c, scope.schema, [...byTable.keys()])
    : [];
  const out: ConstraintState[] = [];
  for (const k of all) {
    const s: ConstraintState = { table: k.table, name: k.name, type: k.type, valid: k.valid };
    if (!k.valid) {
      const where = scopeWhere(scope, byTable.get(k.table)!.keyColumn, keyType);
      const fk = notValidFks.find((f) => same(f, k));
      // A check passes when its expression is true or null; a foreign key as its MATCH rules say.
      const broken = fk ? brokenBy(fk) : `(${k.expr}) is false`;
      const sql = `select count(*)::int as n from ${qualified(scope.schema, k.table)} c${where}${where ? ' and' : ' where'} ${broken}`;
      s.violatingRows = (await c.query<{ n: number }>(sql)).rows[0].n;
    }
    out.push(s);
  }
  return out;
}

/** Add back as it was held, NOT VALID when it should be. */
function addBack(schema: string, k: Present, notValid: boolean): string {
  const def = k.def.replace(/ NOT VALID$/, '');
  return `alter table ${qualified(schema, k.table)} add constraint ${ident(k.name)} ${def}${notValid ? ' NOT VALID' : ''}`;
}

/**
 * Before a bulk load into a FRESH placement (in the caller's transaction, nobody else sees it):
 * drop every check and foreign key the rows may break, that is every constraint NOT VALID at the
 * source (per `source`; when it is not known, as for a backup older than the record, every one
 * NOT VALID here, which the migrations made so), and return what re-adds them `NOT VALID` after
 * the load (no scan, as pg_dump restores them), then validates the constraints the source had
 * validated that are NOT VALID here (the source ran VALIDATE outside the migrations): one scan
 * each, and a row breaking one fails the transaction. Call before deferIndexes drops the rest;
 * call what it returns after deferIndexes put the keys back (a foreign key needs them).
 *
 * @example
 *   const putBack = await holdForFreshLoad(c, 't_acme', manifest.constraints);
 *   … deferIndexes, COPY, recreate …
 *   await putBack();
 */
export async function holdForFreshLoad(c: Q, schema: string, source: ConstraintState[] | undefined): Promise<() => Promise<void>> {
  const wantsValid = (k: Present) => source?.find((s) => same(s, k))?.valid ?? k.valid;
  const held = (await present(c, schema)).filter((k) => !wantsValid(k));
  for (const k of held) await c.query(`alter table ${qualified(schema, k.table)} drop constraint ${ident(k.name)}`);
  return async () => {
    for (const k of held) await c.query(addBack(schema, k, true));
    for (const k of await present(c, schema)) {
      if (!k.valid && wantsValid(k)) await c.query(`alter table ${qualified(schema, k.table)} validate constraint ${ident(k.name)}`);
    }
  };
}

/**
 * How a shared load's foreign keys are checked (see pool-load.ts): by the row-by-row triggers,
 * once per tenant after the load with the triggers off, or dropped and re-added around it.
 */
export type SharedForeignKeys = 'triggers' | 'checked once' | 'dropped';

export interface SharedHold {
  /** The constraints dropped for the load ("table.name"), re-added NOT VALID by `putBack`. */
  held: string[];
  /** NOT VALID foreign keys the once-per-tenant check leaves out ("table.name"): the rows breaking them are the source's. */
  unchecked: Set<string>;
  putBack(): Promise<void>;
}

/** How long a shared load waits for a table it must hold (the pool's other tenants queue behind the wait). */
const SHARED_LOCK_TIMEOUT = '5s';

/**
 * Before loading ONE tenant's rows into SHARED tables (a pool; in the caller's transaction): the
 * constraints stay the pool's, NOT VALID for every tenant as they are. The rows that break one at
 * the source (`source`, with counts; when not known, every constraint NOT VALID here is assumed
 * broken) cannot go in while PostgreSQL checks them, so:
 *  - a check constraint is dropped before the load and re-added NOT VALID after it, in the same
 *    transaction: ALTER TABLE holds ACCESS EXCLUSIVE on the table from the drop to the commit, so
 *    no other tenant writes (or reads) the table unchecked meanwhile; they wait instead, for the
 *    rest of the load, the verification and the commit. The drop waits at most 5 s for the lock;
 *  - a foreign key: left out of the once-per-tenant check when the triggers are off (no lock),
 *    dropped and re-added like a check when the triggers fire, nothing when the load drops them all;
 *  - a constraint that is VALIDATED here cannot take rows that break it without weakening it for
 *    every tenant: refused (`code`), nothing loaded.
 * Tables whose rows break nothing are not touched.
 */
export async function holdForSharedLoad(
  c: Q,
  schema: string,
  tables: string[],
  source: ConstraintState[] | undefined,
  o: { foreignKeys: SharedForeignKeys; code: ErrorCode },
): Promise<SharedHold> {
  const here = await present(c, schema, tables);
  const broken: ConstraintState[] = source ? source.filter((s) => !s.valid && (s.violatingRows ?? 1) > 0) : here.filter((k) => !k.valid);
  const held: Present[] = [];
  const unchecked = new Set<string>();
  for (const s of broken) {
    const k = here.find((h) => same(h, s));
    // Not a rule here: the rows go in as they are.
    if (!k || k.type !== s.type) continue;
    if (k.valid) {
      throw new TenantctlError(
        o.code,
        `${s.violatingRows ?? 'some'} of the tenant's rows of ${schema}.${s.table} break ${s.type} constraint ${s.name}, which is NOT VALID at the source and validated here: loading them would break a rule every other tenant of these shared tables relies on; nothing was loaded`,
        `fix those rows at the source (or load into a schema or database placement of the tenant's own), then run the command again`,
      );
    }
    if (k.type === 'foreign key' && o.foreignKeys === 'checked once') unchecked.add(`${k.table}.${k.name}`);
    else if (k.type === 'check' || o.foreignKeys === 'triggers') held.push(k);
  }
  if (held.length) {
    const before = (await c.query<{ t: string }>(`select current_setting('lock_timeout') as t`)).rows[0].t;
    await c.query(`select set_config('lock_timeout', $1, true)`, [SHARED_LOCK_TIMEOUT]);
    try {
      for (const k of held) await c.query(`alter table ${qualified(schema, k.table)} drop constraint ${ident(k.name)}`);
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
      throw new TenantctlError(
        o.code,
        `could not lock ${[...new Set(held.map((k) => `${schema}.${k.table}`))].join(', ')} within ${SHARED_LOCK_TIMEOUT} to load rows that break NOT VALID constraint(s) ${held.map((k) => k.name).join(', ')}: another transaction holds the table; nothing was loaded`,
        'run the command again when the long transaction has ended (pg_stat_activity names it)',
      );
    }
    await c.query(`select set_config('lock_timeout', $1, true)`, [before]);
  }
  return {
    held: held.map((k) => `${k.table}.${k.name}`),
    unchecked,
    putBack: async () => {
      for (const k of held) await c.query(addBack(schema, k, true));
    },
  };
}
