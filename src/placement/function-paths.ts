import type pg from 'pg';
import { ident } from '../sql.js';

/**
 * A function's `SET search_path` names schemas by name, frozen when it was made (`set
 * search_path from current` in a migration, the safe way to write a trigger or SECURITY DEFINER
 * function). A placement built beside the live one under another name and renamed into place (a
 * `restore --replace`) keeps pointing its functions at the name it was built under, which is gone
 * once renamed: the application's triggers then fail ("relation … does not exist"). This rewrites
 * those settings in `schema` from `from` to `to`, in the caller's transaction. Returns the
 * functions it changed.
 */
export async function retargetFunctionPaths(c: Pick<pg.ClientBase, 'query'>, schema: string, from: string, to: string): Promise<string[]> {
  const { rows } = await c.query<{ fn: string; cfg: string }>(
    `select p.oid::regprocedure::text as fn, s.cfg
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace, unnest(p.proconfig) s(cfg)
      where n.nspname = $1 and s.cfg like 'search_path=%'`,
    [schema],
  );
  const changed: string[] = [];
  for (const r of rows) {
    const names = searchPathNames(r.cfg.slice('search_path='.length));
    if (!names.includes(from)) continue;
    const list = names.map((n) => ident(n === from ? to : n)).join(', ');
    await c.query(`alter routine ${r.fn} set search_path = ${list}`);
    changed.push(r.fn);
  }
  return changed;
}

/**
 * The schema names of a search_path value as PostgreSQL stores it (`a, "B c", "$user"`): split
 * at commas outside double quotes, quotes removed (`""` inside them is one `"`).
 *
 * @example
 *   searchPathNames('"$user", public, "t ""x"""') // ['$user', 'public', 't "x"']
 */
export function searchPathNames(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '"' && value[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '' || out.length) out.push(cur.trim());
  return out.filter((n) => n !== '');
}
