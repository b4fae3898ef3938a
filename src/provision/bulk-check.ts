import type { CatalogDb } from '../catalog/open.js';
import type { Config } from '../config/types.js';
import { TenantctlError, UsageError } from '../errors.js';
import { planTenant, type CreateTenantInput } from './plan.js';
import { resumeConflicts } from './resume-check.js';

/**
 * The bulk pre-check of `tenant create --from-file`: every row against the config (slug, tier,
 * model, region, shard, residency, key format) and against the catalog and the rest of the file
 * (keys used by other tenants or twice in the file; re-runs of failed or provisioning tenants
 * whose recorded placement conflicts with the row), all before anything is created. Every
 * problem is reported at once (exit 2, nothing created). Tenants that already exist are not a
 * problem: the run skips them, so a file can be run again.
 *
 * @example
 *   await assertBulkInputs({ config, db }, readTenantFile('new.csv'), 'new.csv');
 */
export async function assertBulkInputs(deps: { config: Config; db: CatalogDb }, inputs: CreateTenantInput[], file: string): Promise<void> {
  const problems = await bulkProblems(deps, inputs);
  if (problems.length === 0) return;
  const shown = problems.slice(0, 50);
  const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : '';
  throw new UsageError(
    'BAD_INPUT',
    `${file} has ${problems.length} problem(s):\n  ${shown.join('\n  ')}${more}`,
    'fix those rows; nothing was created',
  );
}

export async function bulkProblems(deps: { config: Config; db: CatalogDb }, inputs: CreateTenantInput[]): Promise<string[]> {
  const { config, db } = deps;
  const problems: string[] = [];
  const where = (i: number) => `row ${i + 1} (${inputs[i].slug})`;
  const empty = new Map<string, number>();
  inputs.forEach((input, i) => {
    try {
      planTenant(config, input, empty);
    } catch (err) {
      if (!(err instanceof TenantctlError)) throw err;
      problems.push(`${where(i)}: ${err.message}`);
    }
  });
  const keyRows = new Map<string, number>();
  inputs.forEach((input, i) => {
    if (input.key === undefined) return;
    const first = keyRows.get(input.key);
    if (first !== undefined) problems.push(`${where(i)}: key ${input.key} is also the key of ${where(first)}`);
    else keyRows.set(input.key, i);
  });
  const keys = [...keyRows.keys()];
  if (keys.length > 0) {
    const taken = await db.selectFrom('tenants').select(['slug', 'key']).where('key', 'in', keys).execute();
    for (const t of taken) {
      const i = keyRows.get(t.key)!;
      if (inputs[i].slug !== t.slug) problems.push(`${where(i)}: key ${t.key} belongs to tenant ${t.slug}`);
    }
  }
  const slugs = inputs.map((x) => x.slug);
  const existing = slugs.length ? await db.selectFrom('tenants').selectAll().where('slug', 'in', slugs).execute() : [];
  const bySlug = new Map(existing.map((t) => [t.slug, t]));
  inputs.forEach((input, i) => {
    const row = bySlug.get(input.slug);
    if (!row || (row.status !== 'provisioning' && row.status !== 'failed')) return;
    const conflicts = resumeConflicts(config, row, input);
    if (conflicts.length)
      problems.push(
        `${where(i)}: ${row.status} tenant recorded as ${row.model} on ${row.shard} (${row.region}); the row asks ${conflicts.join(', ')}`,
      );
  });
  return problems;
}
