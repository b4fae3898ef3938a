import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { parse as parseYaml } from 'yaml';
import { UsageError, errorMessage } from '../errors.js';
import { slugProblem } from '../placement/slug.js';
import { nameProblem } from './name.js';
import type { CreateTenantInput } from './plan.js';

const COLUMNS = ['slug', 'name', 'model', 'tier', 'region', 'shard', 'key', 'residency'] as const;

/** One row of a bulk file, with where it is in the file (`line 5 (acme)`, `item 3 (acme)`). */
export interface BulkRow {
  input: CreateTenantInput;
  where: string;
}

/** A problem of a bulk file, at its row (index into the rows) so every pass sorts into one list. */
export interface BulkProblem {
  row: number;
  text: string;
}

/**
 * Read a bulk onboarding file and throw (exit 2) naming every problem in it. For a caller that
 * also checks the rows against the config and catalog, parseTenantFile + bulk-check report both
 * in one list.
 *
 * @example
 *   readTenantFile('new.csv') // [{ slug: 'acme', tier: 'standard' }, ...]
 */
export function readTenantFile(file: string): CreateTenantInput[] {
  const { rows, problems } = parseTenantFile(file);
  throwBulkProblems(file, problems);
  return rows.map((r) => r.input);
}

/** Throw the one exit-2 error listing a bulk file's problems in file order, if any. */
export function throwBulkProblems(file: string, problems: BulkProblem[]): void {
  if (problems.length === 0) return;
  const sorted = [...problems].sort((a, b) => a.row - b.row).map((p) => p.text);
  const shown = sorted.slice(0, 50);
  const more = sorted.length > shown.length ? `\n  … and ${sorted.length - shown.length} more` : '';
  throw new UsageError(
    'BAD_INPUT',
    `${file} has ${sorted.length} problem(s):\n  ${shown.join('\n  ')}${more}`,
    'fix those rows; nothing was created',
  );
}

/**
 * Parse a bulk onboarding file: CSV with a header row, or YAML (a list of mappings, or
 * `tenants:` holding one). A file that cannot be read or parsed throws; the rows' own problems
 * are returned, each at its row, labelled with the file's own numbering: a CSV's line number
 * (the header is line 1), a YAML list's item number.
 */
export function parseTenantFile(file: string): { rows: BulkRow[]; problems: BulkProblem[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError('BAD_INPUT', `cannot read ${file}: ${errorMessage(err)}`, 'check the path given to --from-file');
  }
  const ext = extname(file).toLowerCase();
  let records: Record<string, unknown>[];
  let lineOf = (i: number) => `item ${i + 1}`;
  const unknownOf = (rec: Record<string, unknown>) => Object.keys(rec).filter((k) => !(COLUMNS as readonly string[]).includes(k));
  // A CSV's columns are its header's: an unknown one is line 1's problem, said once, not every row's.
  let headerProblem: string | null = null;
  try {
    if (ext === '.csv') {
      const parsed = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, bom: true, info: true }) as {
        record: Record<string, unknown>;
        info: { lines: number };
      }[];
      records = parsed.map((r) => r.record);
      lineOf = (i) => `line ${parsed[i].info.lines}`;
      const header = records[0] ? unknownOf(records[0]) : [];
      if (header.length) headerProblem = `line 1 (the header): unknown column(s) ${header.join(', ')} (allowed: ${COLUMNS.join(', ')})`;
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
  const problems: BulkProblem[] = [];
  const seen = new Set<string>();
  const out: BulkRow[] = [];
  records.forEach((rec, i) => {
    const slug = rec && typeof rec === 'object' && rec.slug != null ? String(rec.slug) : '';
    const where = `${lineOf(i)}${slug ? ` (${slug})` : ''}`;
    const problem = (text: string) => problems.push({ row: out.length, text: `${where}: ${text}` });
    if (!rec || typeof rec !== 'object') {
      problem('not a mapping');
      out.push({ input: { slug }, where });
      return;
    }
    const unknown = ext === '.csv' ? [] : unknownOf(rec);
    if (unknown.length) problem(`unknown column(s) ${unknown.join(', ')} (allowed: ${COLUMNS.join(', ')})`);
    const p = slugProblem(slug);
    if (p) problem(`slug ${JSON.stringify(slug)} ${p}`);
    else if (seen.has(slug)) problem(`slug "${slug}" appears twice`);
    seen.add(slug);
    const nameIssue = rec.name === undefined || rec.name === null ? null : nameProblem(String(rec.name));
    if (nameIssue) problem(`name ${nameIssue}`);
    const input: CreateTenantInput = { slug };
    for (const c of COLUMNS) {
      const v = rec[c];
      if (c !== 'slug' && v !== undefined && v !== null && String(v) !== '') input[c] = String(v);
    }
    out.push({ input, where });
  });
  if (headerProblem) problems.unshift({ row: 0, text: headerProblem });
  if (records.length === 0) problems.push({ row: 0, text: 'no tenants in the file' });
  return { rows: out, problems };
}
