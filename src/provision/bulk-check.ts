import type { CatalogDb } from '../catalog/open.js';
import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import { canonicalKey, keyAsStored, planTenant, unknownNames } from './plan.js';
import { resumeConflicts } from './resume-check.js';
import { slugProblem } from '../placement/slug.js';
import { throwBulkProblems, type BulkProblem, type BulkRow } from './bulk-file.js';

/**
 * The bulk pre-check of `tenant create --from-file`: every row against the config (slug, tier,
 * model, region, shard, residency, key format) and against the catalog and the rest of the file
 * (keys used by other tenants or twice in the file; re-runs whose row conflicts with the tenant
 * the catalog recorded), all before anything is created. The file's own problems (`fileProblems`,
 * from parseTenantFile) and these are reported in ONE list in file order, with the file's own
 * numbering (exit 2, nothing created). A row for a tenant that exists as the row says is not a
 * problem: the run skips it, so a file can be run again.
 *
 * @example
 *   const { rows, problems } = parseTenantFile('new.csv');
 *   await assertBulkInputs({ config, db }, rows, problems, 'new.csv');
 */
export async function assertBulkInputs(
  deps: { config: Config; db: CatalogDb },
  rows: BulkRow[],
  fileProblems: BulkProblem[],
  file: string,
): Promise<void> {
  throwBulkProblems(file, [...fileProblems, ...(await bulkProblems(deps, rows))]);
}

/** The columns a re-run row must agree on with a created tenant (a tenant may have moved shard since). */
const SETTLED = ['key', 'model', 'tier', 'region'] as const;

export async function bulkProblems(deps: { config: Config; db: CatalogDb }, rows: BulkRow[]): Promise<BulkProblem[]> {
  const { config, db } = deps;
  const problems: BulkProblem[] = [];
  const inputs = rows.map((r) => r.input);
  const problem = (i: number, text: string) => problems.push({ row: i, text: `${rows[i].where}: ${text}` });
  const empty = new Map<string, number>();
  inputs.forEach((input, i) => {
    // A bad slug is the file's problem already (parseTenantFile); planning it would say it twice.
    if (slugProblem(input.slug)) return;
    let said: string | undefined;
    try {
      planTenant(config, input, empty);
    } catch (err) {
      if (!(err instanceof TenantctlError)) throw err;
      said = err.message;
      problem(i, err.message);
      // The other names of the row that name nothing, in the same list.
      for (const e of unknownNames(config, input)) if (e.message !== said) problem(i, e.message);
    }
    // Planning stops at a row's first problem; its key is checked on its own, so one list has both.
    if (input.key === undefined) return;
    try {
      canonicalKey(config, input.key);
    } catch (err) {
      if (!(err instanceof TenantctlError)) throw err;
      if (err.message !== said) problem(i, err.message);
    }
  });
  const keyRows = new Map<string, number>();
  inputs.forEach((input, i) => {
    if (input.key === undefined) return;
    // As stored: `007` and `7` are one bigint key.
    const key = keyAsStored(config, input.key);
    const first = keyRows.get(key);
    if (first !== undefined) problem(i, `key ${input.key} is also the key of ${rows[first].where}`);
    else keyRows.set(key, i);
  });
  const keys = [...keyRows.keys()];
  if (keys.length > 0) {
    const taken = await db.selectFrom('tenants').select(['slug', 'key']).where('key', 'in', keys).execute();
    for (const t of taken) {
      const i = keyRows.get(t.key)!;
      if (inputs[i].slug !== t.slug) problem(i, `key ${t.key} belongs to tenant ${t.slug}`);
    }
  }
  const slugs = inputs.map((x) => x.slug).filter((x) => !slugProblem(x));
  const existing = slugs.length ? await db.selectFrom('tenants').selectAll().where('slug', 'in', slugs).execute() : [];
  const bySlug = new Map(existing.map((t) => [t.slug, t]));
  inputs.forEach((input, i) => {
    const row = bySlug.get(input.slug);
    if (!row) return;
    if (row.status === 'provisioning' || row.status === 'failed') {
      const conflicts = resumeConflicts(config, row, input);
      if (conflicts.length)
        problem(i, `${row.status} tenant recorded as ${row.model} on ${row.shard} (${row.region}); the row asks ${conflicts.join(', ')}`);
      return;
    }
    // A re-run of a created tenant is skipped only when the row says what was created; a row
    // asking for something else would otherwise come back "skipped" with exit 0.
    for (const f of SETTLED) {
      const given = input[f];
      if (given !== undefined && given !== row[f])
        problem(i, `${f} is ${given} in the file, but tenant ${row.slug} exists with ${f} ${row[f]} (${row.status})`);
    }
  });
  return problems;
}
