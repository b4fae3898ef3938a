import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { parse as parseYaml } from 'yaml';
import { UsageError, errorMessage } from '../errors.js';
import { slugProblem } from '../placement/slug.js';
import { nameProblem } from './name.js';
import type { CreateTenantInput } from './plan.js';

const COLUMNS = ['slug', 'name', 'model', 'tier', 'region', 'shard', 'key', 'residency'] as const;

/**
 * Read a bulk onboarding file: CSV with a header row, or YAML (a list of mappings, or
 * `tenants:` holding one). Every problem in the file is reported at once, before anything is
 * created.
 *
 * @example
 *   readTenantFile('new.csv') // [{ slug: 'acme', tier: 'standard' }, ...]
 */
export function readTenantFile(file: string): CreateTenantInput[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError('BAD_INPUT', `cannot read ${file}: ${errorMessage(err)}`, 'check the path given to --from-file');
  }
  const ext = extname(file).toLowerCase();
  let records: Record<string, unknown>[];
  try {
    if (ext === '.csv') {
      records = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, bom: true });
    } else if (ext === '.yaml' || ext === '.yml') {
      const doc = parseYaml(text) as unknown;
      const list = Array.isArray(doc) ? doc : (doc as { tenants?: unknown })?.tenants;
      if (!Array.isArray(list)) throw new Error('expected a list of tenants (or a `tenants:` key holding one)');
      records = list as Record<string, unknown>[];
    } else {
      throw new UsageError(
        'BAD_INPUT',
        `--from-file ${file}: unknown file type "${ext}"`,
        'use a .csv file with a header row, or .yaml/.yml',
      );
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(
      'BAD_INPUT',
      `${file} could not be parsed: ${errorMessage(err)}`,
      'fix the file; CSV needs a header row with a slug column',
    );
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  const out: CreateTenantInput[] = [];
  records.forEach((rec, i) => {
    const where = ext === '.csv' ? `line ${i + 2}` : `item ${i + 1}`;
    if (!rec || typeof rec !== 'object') {
      problems.push(`${where}: not a mapping`);
      return;
    }
    const unknown = Object.keys(rec).filter((k) => !(COLUMNS as readonly string[]).includes(k));
    if (unknown.length) problems.push(`${where}: unknown column(s) ${unknown.join(', ')} (allowed: ${COLUMNS.join(', ')})`);
    const slug = String(rec.slug ?? '');
    const p = slugProblem(slug);
    if (p) problems.push(`${where}: slug ${JSON.stringify(slug)} ${p}`);
    else if (seen.has(slug)) problems.push(`${where}: slug "${slug}" appears twice`);
    seen.add(slug);
    const nameIssue = rec.name === undefined || rec.name === null ? null : nameProblem(String(rec.name));
    if (nameIssue) problems.push(`${where}: name ${nameIssue}`);
    const input: CreateTenantInput = { slug };
    for (const c of COLUMNS) {
      const v = rec[c];
      if (c !== 'slug' && v !== undefined && v !== null && String(v) !== '') input[c] = String(v);
    }
    out.push(input);
  });
  if (records.length === 0) problems.push('no tenants in the file');
  if (problems.length) {
    throw new UsageError(
      'BAD_INPUT',
      `${file} has ${problems.length} problem(s):\n  ${problems.join('\n  ')}`,
      'fix those rows; nothing was created',
    );
  }
  return out;
}
