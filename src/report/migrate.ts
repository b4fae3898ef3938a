import { counted } from './count.js';
import type { RepairDocument } from '../migrate/repair.js';
import type { MigrateStatusDocument } from '../migrate/status.js';
import type { MigrateRow, MigrateUpDocument } from '../migrate/up.js';
import type { Output } from './output.js';
import { renderTable } from './table.js';

/**
 * The end of `migrate up` and the whole of `migrate status`: the JSON document with --json;
 * otherwise tables and one summary line on stdout.
 */
export function renderMigrateUp(out: Output, doc: MigrateUpDocument): void {
  if (out.json) {
    out.document(doc);
    return;
  }
  if (doc.dryRun) renderDryRun(out, doc);
  const failed = doc.results.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    out.print(
      renderTable(
        out,
        ['tenant', 'target', 'migration', 'error'],
        byTarget(failed).map(({ target, rows }) => {
          const e = rows[0].error!;
          return [tenantsCell(rows), target, typeof e.migration === 'string' ? e.migration : '', `${e.code}: ${e.message}`];
        }),
      ),
    );
  }
  const retried = renderRetried(out, doc);
  for (const w of doc.warnings ?? []) out.error(out.color.yellow(`warning: ${w}`));
  const s = doc.summary;
  const t = doc.targets;
  // Tenants left out for their status (provisioning, failed, deleting); not-run targets are counted above.
  const skipped = doc.results.filter((r) => r.status === 'skipped' && !r.reason?.startsWith('not run'));
  const reasons = countBy(skipped.map((r) => r.reason ?? ''));
  const head = doc.head ? ` to ${doc.head}` : '';
  // A target Ctrl-C stopped between two files is counted not run, but its first files are
  // committed: the line says so, not only its JSON row ("not run: interrupted after applying …").
  const partly = byTarget(doc.results.filter((r) => r.reason?.startsWith('not run: interrupted after applying'))).length;
  const notRun = `${t.notRun} not run${partly ? ` (${partly} of them after applying some of their files)` : ''}`;
  const line = doc.dryRun
    ? `migrate up --dry-run: ${t.migrated} of ${counted(t.total, 'target')} (${counted(s.total, 'tenant')}) would be migrated${head}, ${t.upToDate} up to date, ${t.failed} refused; nothing was changed`
    : `migrate up${doc.run !== null ? ` (run ${doc.run})` : ''}: ${counted(s.total, 'tenant')} in ${counted(t.total, 'target')}: ${t.migrated} migrated${head}, ${t.upToDate} up to date, ${t.failed} failed, ${notRun}` +
      `${t.unreachable ? ` (${t.unreachable} unreachable)` : ''}` +
      `${skipped.length ? `; ${skipped.length} skipped (${reasons})` : ''}${retried}${doc.interrupted ? '; interrupted' : ''}${stoppedText(doc)} in ${(s.durationMs / 1000).toFixed(1)}s`;
  out.print(doc.ok ? out.color.green(line) : out.color.red(line));
  // What the failures say to do (a drifted file: restore it or repair; not a retry, which fails the same way).
  const said = [...new Set(failed.map((r) => r.error?.hint).filter((h): h is string => typeof h === 'string'))];
  for (const h of said.slice(0, 3)) out.print(`hint: ${h}`);
  if (said.length > 3) out.print(`… and ${said.length - 3} more hints (see --json)`);
  const retryable = failed.some((r) => r.error?.code !== 'DRIFT');
  if (!doc.dryRun && doc.run !== null && (retryable || t.notRun > 0)) {
    const hints = [];
    if (retryable) hints.push(`retry the failures: tenantctl migrate up --only-failed ${doc.run}`);
    hints.push(`finish the run (failures and targets not run): tenantctl migrate up --resume ${doc.run}`);
    out.print(hints.join('\n'));
  }
}

/**
 * The targets that took more than one attempt (a migration waited for a lock on a busy table,
 * or hit a deadlock, and was tried again), with their counts; returns the summary line's part.
 */
function renderRetried(out: Output, doc: MigrateUpDocument): string {
  const retried = byTarget(doc.results.filter((r) => (r.attempts ?? 1) > 1));
  if (retried.length === 0) return '';
  const shown = retried.slice(0, 20);
  out.print(
    renderTable(
      out,
      ['target', 'tenant', 'attempts', 'status'],
      shown.map(({ target, rows }) => [target, tenantsCell(rows), String(rows[0].attempts), rows[0].status]),
    ),
  );
  if (retried.length > shown.length) out.print(`… and ${retried.length - shown.length} more retried (see --json)`);
  const most = Math.max(...retried.map(({ rows }) => rows[0].attempts ?? 1));
  return `; ${retried.length} target${retried.length === 1 ? '' : 's'} retried on locks (at most ${most} attempts)`;
}

/** `; stopped at 3 failures (--max-failures 3); targets already running added 2 more` */
function stoppedText(doc: MigrateUpDocument): string {
  const st = doc.stopped;
  if (!st) return '';
  const more = st.failures - st.failuresAtStop;
  return `; stopped scheduling at ${st.failuresAtStop} failure(s) (${st.reason})${more > 0 ? `; targets already running added ${more} more` : ''}`;
}

/** Pending migrations grouped by target. */
function renderDryRun(out: Output, doc: MigrateUpDocument): void {
  const pending = byTarget(doc.results.filter((r) => r.status === 'succeeded' && r.pending?.length));
  if (pending.length === 0) {
    out.print('nothing to apply');
    return;
  }
  out.print(
    renderTable(
      out,
      ['target', 'tenant', 'pending'],
      pending.map(({ target, rows }) => [target, tenantsCell(rows), rows[0].pending!.join(', ')]),
    ),
  );
}

export function renderMigrateStatus(out: Output, doc: MigrateStatusDocument): void {
  if (out.json) {
    out.document(doc);
    return;
  }
  const s = doc.summary;
  if (s.targets === 0) {
    out.print(
      `migrate status: no targets selected (head ${doc.head ?? '(no migration files)'})${s.skipped ? `; ${counted(s.skipped, 'tenant')} skipped (${countBy(doc.skipped.map((x) => x.reason))})` : ''}`,
    );
    return;
  }
  out.print(
    renderTable(
      out,
      ['tenants', 'targets', 'state'],
      doc.groups.map((g) => [g.tenants, g.targets, g.label]),
    ),
  );
  // Pending targets are the groups above; the table names the ones that need a person.
  const problems = doc.targets.filter((t) => (t.condition !== 'up-to-date' && t.condition !== 'pending') || t.unknown.length > 0);
  if (problems.length > 0) {
    const shown = problems.slice(0, 50);
    out.print(
      renderTable(
        out,
        ['target', 'tenant', 'state', 'version', 'detail'],
        shown.map((t) => [
          t.target,
          t.tenants.length > 3 ? `${t.tenants.slice(0, 3).join(', ')} +${t.tenants.length - 3} more` : t.tenants.join(', '),
          t.condition,
          t.version ?? '',
          detail(t),
        ]),
      ),
    );
    if (problems.length > shown.length) out.print(`… and ${problems.length - shown.length} more (see --json)`);
  }
  const line =
    `migrate status: ${counted(s.tenants, 'tenant')} in ${counted(s.targets, 'target')}, head ${doc.head ?? '(no migration files)'}: ` +
    doc.groups.map((g) => g.label).join(', ') +
    (s.skipped ? `; ${s.skipped} skipped (${countBy(doc.skipped.map((x) => x.reason))})` : '') +
    (s.unknown ? `; ${s.unknown} target(s) with unknown migrations` : '');
  out.print(doc.ok ? out.color.green(line) : out.color.yellow(line));
  for (const r of doc.repairs.slice(0, 3)) {
    out.print(
      `repair run ${r.run} (${r.at}): ${r.mode === 'reapply' ? 're-applied' : 're-baselined'} ${r.migration} on ${r.repaired} of ${r.targets} target(s)${r.failed ? `, ${r.failed} failed` : ''} (${r.status})`,
    );
  }
}

/** `migrate repair`: the document with --json, else one line per target and a summary. */
export function renderMigrateRepair(out: Output, doc: RepairDocument): void {
  if (out.json) {
    out.document(doc);
    return;
  }
  const seen = new Set<string>();
  const rows = doc.results.filter((r) => {
    const key = r.target ?? r.tenant;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  if (rows.length > 0) {
    out.print(
      renderTable(
        out,
        ['target', 'tenant', 'status', 'detail'],
        rows.map((r) => [r.target ?? '', r.tenant, r.status, r.error?.message ?? r.reason ?? (r.status === 'succeeded' ? 'repaired' : '')]),
      ),
    );
  }
  const s = doc.summary;
  const what = doc.mode === 'reapply' ? 're-applied' : 're-baselined';
  const line = `migrate repair ${doc.migration}${doc.dryRun ? ' (dry run)' : ` run ${doc.run}`}: ${s.succeeded} tenant(s) ${what}, ${s.skipped} skipped, ${s.failed} failed`;
  out.print(doc.ok ? out.color.green(line) : out.color.yellow(line));
}

function detail(t: MigrateStatusDocument['targets'][number]): string {
  const parts: string[] = [];
  if (t.error) parts.push(t.error.message);
  if (t.drift.length) parts.push(`changed: ${t.drift.map((d) => d.migration).join(', ')}`);
  if (t.pending.length) parts.push(`pending: ${t.pending.join(', ')}`);
  if (t.unknown.length) parts.push(`unknown here: ${t.unknown.join(', ')}`);
  if (t.lastRun?.error && typeof t.lastRun.error === 'object') {
    const e = t.lastRun.error as { code?: string; migration?: string; message?: string };
    parts.push(`run ${t.lastRun.run} failed${e.migration ? ` at ${e.migration}` : ''}: ${e.message ?? e.code}`);
  }
  return parts.join('; ');
}

/** Rows grouped by target, in first-seen order (pool tenants share their target's result). */
function byTarget(rows: MigrateRow[]): { target: string; rows: MigrateRow[] }[] {
  const m = new Map<string, MigrateRow[]>();
  for (const r of rows) {
    const key = r.target ?? r.tenant;
    const list = m.get(key);
    if (list) list.push(r);
    else m.set(key, [r]);
  }
  return [...m].map(([target, rs]) => ({ target, rows: rs }));
}

function tenantsCell(rows: MigrateRow[]): string {
  const names = rows.map((r) => r.tenant);
  return names.length > 3 ? `${names.slice(0, 3).join(', ')} +${names.length - 3} more` : names.join(', ');
}

function countBy(values: string[]): string {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m].map(([k, n]) => `${n} ${k}`).join(', ');
}
