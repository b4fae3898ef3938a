import type { ResultDocument, TenantResult } from '../fanout/result.js';
import type { Output } from './output.js';
import { renderTable } from './table.js';
import { escapeControl } from './escape.js';

/**
 * The end of a fan-out: the JSON document with --json; otherwise a summary line and a table of
 * failures (tenant, target, error).
 */
export function renderResultDocument(out: Output, doc: ResultDocument): void {
  if (out.json) {
    out.document(doc);
    return;
  }
  const s = doc.summary;
  const failed = doc.results.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    out.print(
      renderTable(
        out,
        ['tenant', 'target', 'error'],
        failed.map((r) => [r.tenant, r.target ?? r.shard ?? '', errorText(r)]),
      ),
    );
  }
  // What the failures say to do (LOCKED: wait for it, or --wait), each said once.
  const said = [...new Set(failed.map((r) => r.error?.hint).filter((h): h is string => typeof h === 'string'))];
  for (const h of said.slice(0, 3)) out.print(`hint: ${escapeControl(h)}`);
  if (said.length > 3) out.print(`… and ${said.length - 3} more hints (see --json)`);
  // What a row's command also did or found (a killed operation's leftovers it cleaned, one it
  // could not): in the JSON as each row's `warnings`, here on stderr as restore prints its own.
  for (const r of doc.results) {
    const warnings = Array.isArray(r.warnings) ? (r.warnings as unknown[]) : [];
    for (const w of warnings) out.error(out.color.yellow(`warning: ${escapeControl(r.tenant)}: ${escapeControl(String(w))}`));
  }
  // Items that never started (stopped, interrupted) are not "skipped": say how many never ran.
  const notRun = doc.results.filter(isNotRun).length;
  const line =
    `${doc.command}${doc.interrupted ? ' (interrupted)' : ''}: ${s.succeeded} succeeded, ${s.failed} failed, ${s.skipped - notRun} skipped` +
    `${notRun ? `, ${notRun} not run` : ''} of ${s.total} in ${(s.durationMs / 1000).toFixed(1)}s`;
  out.print(doc.ok ? out.color.green(line) : out.color.red(line));
}

/**
 * A result whose item never started: the fan-out stopped (`not run: …`) or was interrupted
 * before it (the bounded runner's reason is then just `interrupted`). Not "skipped".
 */
export function isNotRun(r: TenantResult): boolean {
  return r.status === 'skipped' && (r.reason === 'interrupted' || Boolean(r.reason?.startsWith('not run')));
}

export function errorText(r: TenantResult): string {
  if (!r.error) return r.reason ?? '';
  const where = typeof r.error.migration === 'string' ? ` (${r.error.migration})` : '';
  return `${r.error.code}${where}: ${r.error.message}`;
}

/** One plain line per finished target, for logs and CI. */
export function resultLine(out: Output, r: TenantResult): string {
  const mark =
    r.status === 'succeeded' ? out.color.green('ok') : r.status === 'failed' ? out.color.red('FAILED') : out.color.yellow('skipped');
  const ms = r.durationMs !== undefined ? ` ${r.durationMs}ms` : '';
  const tail = r.status === 'succeeded' ? '' : ` ${errorText(r)}`;
  return `${mark} ${escapeControl(r.tenant)}${r.target ? ` ${r.target}` : ''}${ms}${escapeControl(tail)}`;
}
