import { ident, qualified } from '../sql.js';
import { keyCondition } from '../placement/key-filter.js';

/** One foreign key of a loaded table, as pg_constraint describes it. */
export interface ForeignKey {
  name: string;
  schema: string;
  table: string;
  /** The referencing columns, in the constraint's order. */
  columns: string[];
  parentSchema: string;
  parentTable: string;
  /** The referenced columns, paired with `columns` by position. */
  parentColumns: string[];
  /** pg_constraint.confmatchtype: 's' MATCH SIMPLE (the default), 'f' MATCH FULL, 'p' MATCH PARTIAL (not implemented by PostgreSQL). */
  match: 's' | 'f' | 'p';
}

/** Which of the child's rows are checked: the tenant's rows (key column = $1 cast to the key type). */
export interface FkCheckScope {
  keyColumn: string;
  /** The configured key type (config-validated, e.g. uuid, bigint, text). */
  keyType: string;
}

const childCol = (c: string) => `c.${ident(c)}`;

/** The parent row a child row points at: p.x = c.a and p.y = c.b. */
function joinCondition(fk: ForeignKey): string {
  return fk.columns.map((c, i) => `p.${ident(fk.parentColumns[i])} = ${childCol(c)}`).join(' and ');
}

/**
 * Which child rows the constraint checks at all. MATCH SIMPLE: a row with a NULL in any FK
 * column satisfies the constraint, unchecked. MATCH FULL: all NULL is unchecked, some NULL is a
 * violation by itself (the anti-join's `or` below).
 */
function checked(fk: ForeignKey): { where: string; orViolation: string } {
  const cols = fk.columns.map(childCol);
  if (fk.match === 'f') return { where: `num_nonnulls(${cols.join(', ')}) > 0`, orViolation: `num_nulls(${cols.join(', ')}) > 0 or ` };
  return { where: cols.map((c) => `${c} is not null`).join(' and '), orViolation: '' };
}

/**
 * ONE set-based proof that none of the tenant's rows of the child table references a missing
 * parent: an anti-join scoped to the tenant's key ($1), answering the first offender's FK values
 * (as PostgreSQL prints them: `(a,b)`) or no row.
 *
 * @example
 *   antiJoinSql(fk, { keyColumn: 'tenant_id', keyType: 'uuid' })
 *   // select row(c."status")::text as key from "app"."tasks" c where c."tenant_id" = $1::uuid
 *   //   and c."status" is not null and not exists (select 1 from "app"."task_statuses" p where p."code" = c."status") limit 1
 */
export function antiJoinSql(fk: ForeignKey, scope: FkCheckScope): string {
  return (
    `select row(${fk.columns.map(childCol).join(', ')})::text as key from ${qualified(fk.schema, fk.table)} c` +
    ` where ${keyCondition(scope.keyColumn, scope.keyType, { param: '$1' }, 'c')} and ${brokenBy(fk)} limit 1`
  );
}

/**
 * The condition on a child row `c` that breaks the foreign key: checked at all (its MATCH type's
 * NULL rules) and no parent row. Also counts the rows a NOT VALID foreign key lets stand.
 *
 * @example
 *   brokenBy(fk) // c."status" is not null and (not exists (select 1 from "app"."task_statuses" p where p."code" = c."status"))
 */
export function brokenBy(fk: ForeignKey): string {
  const { where, orViolation } = checked(fk);
  return `${where} and (${orViolation}not exists (select 1 from ${qualified(fk.parentSchema, fk.parentTable)} p where ${joinCondition(fk)}))`;
}

/**
 * Lock the parent rows the tenant's rows reference FOR KEY SHARE, as the row-by-row referential
 * trigger would: until this transaction ends, no one can delete them or change their key, and a
 * delete already under way is waited for (then the row is gone and the anti-join that follows
 * finds the violation). Answers how many rows were locked.
 */
export function lockParentsSql(fk: ForeignKey, scope: FkCheckScope): string {
  return (
    `select count(*)::int as n from (select 1 from ${qualified(fk.parentSchema, fk.parentTable)} p` +
    ` where exists (select 1 from ${qualified(fk.schema, fk.table)} c where ${keyCondition(scope.keyColumn, scope.keyType, { param: '$1' }, 'c')} and ${joinCondition(fk)})` +
    ` for key share of p) locked`
  );
}
