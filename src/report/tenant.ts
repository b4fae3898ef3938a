import { redactDeep } from '../config/redact.js';
import { tenantIdentity } from '../catalog/tenant-doc.js';
import type { EventRow, TenantRow } from '../catalog/tables.js';
import type { ResultDocument, TenantResult } from '../fanout/result.js';
import { tenantRole } from '../placement/placement.js';
import { escapeControl } from './escape.js';
import type { Output } from './output.js';
import type { KilledOperation } from '../operations/killed-of-tenant.js';
import type { SwitchedMove } from '../move/switched-of-tenant.js';
import { printPaged } from './pager.js';
import { isNotRun, renderResultDocument } from './results.js';
import { renderTable } from './table.js';

/** A catalog row as the documents show it (camelCase, the placement spelled out). */
export function publicTenant(t: TenantRow) {
  return {
    ...tenantIdentity(t),
    status: t.status,
    statusDetail: t.status_detail,
    schemaVersion: t.schema_version,
    createdAt: t.created_at,
    updatedAt: t.updated_at,
  };
}

/** `tenant list`: the document, or a table (paged on a TTY). */
/**
 * `tenant list --json` over a catalog of any size: the document written page by page as the
 * catalog is read (slug order), never every row at once. A list that fits in one page keeps the
 * natural order of the table (`sortOne`), as before.
 */
export async function streamTenantList(
  out: Output,
  pages: AsyncIterable<TenantRow[]>,
  sortOne: (page: TenantRow[]) => TenantRow[] = (p) => p,
): Promise<void> {
  out.documentPart('{\n  "command": "tenant list",\n  "ok": true,\n  "tenants": [');
  let first = true;
  const write = (page: TenantRow[]) => {
    if (page.length === 0) return;
    const text = page.map((t) => `\n    ${JSON.stringify(redactDeep(publicTenant(t)))}`).join(',');
    out.documentPart(first ? text : `,${text}`);
    first = false;
  };
  const it = pages[Symbol.asyncIterator]();
  const one = await it.next();
  const two = one.done ? one : await it.next();
  if (!one.done && two.done) write(sortOne(one.value));
  else if (!one.done && !two.done) {
    write(one.value);
    write(two.value);
    for (let next = await it.next(); !next.done; next = await it.next()) write(next.value);
  }
  out.documentPart(`${first ? '' : '\n  '}]\n}\n`);
}

export async function renderTenantList(out: Output, ts: TenantRow[]): Promise<void> {
  if (out.json) {
    out.document({ command: 'tenant list', ok: true, tenants: ts.map(publicTenant) });
    return;
  }
  const rows = ts.map((t) => [t.slug, t.model, t.tier, t.region, t.shard, t.status, t.schema_version ?? '']);
  await printPaged(out, renderTable(out, ['slug', 'model', 'tier', 'region', 'shard', 'status', 'version'], rows));
}

/** `tenant show`: the tenant's fields, what killed operations of it left, and its recent events. */
export function renderTenantShow(
  out: Output,
  t: TenantRow,
  events: EventRow[],
  killed: KilledOperation[] = [],
  switchedMove: SwitchedMove | null = null,
): void {
  if (out.json) {
    out.document({ command: 'tenant show', ok: true, tenant: publicTenant(t), killedOperations: killed, switchedMove, events });
    return;
  }
  const fields: [string, unknown][] = [
    ['slug', t.slug],
    ['name', t.name],
    ['key', t.key],
    ['status', t.status + (t.status_detail ? ` (${t.status_detail})` : '')],
    ['tier', t.tier],
    ['model', t.model],
    ['region', t.region],
    ['shard', t.shard],
    ['database', t.database_name],
    ['schema', t.schema_name],
    ['residency', t.residency ?? ''],
    ['version', t.schema_version ?? ''],
    ['created', t.created_at.toISOString()],
  ];
  out.print(fields.map(([k, v]) => `${k.padEnd(10)} ${escapeControl(String(v))}`).join('\n'));
  // The status alone does not say it: a killed replace leaves the tenant `active` and its writes refused.
  for (const k of killed) out.print(out.color.yellow(`${'killed'.padEnd(10)} ${k.what} (started ${k.startedAt.toISOString()})`));
  if (switchedMove) out.print(out.color.yellow(`${'unfinished'.padEnd(10)} ${switchedMove.what}`));
  out.print('\nrecent events:');
  out.print(
    renderTable(
      out,
      ['at', 'actor', 'command', 'action', 'result'],
      events.map((e) => [e.at.toISOString(), e.actor + (e.ci_job ? ` (${e.ci_job})` : ''), e.command, e.action, e.result]),
    ),
  );
}

/** suspend, resume, delete: the tenant (--json) or one line. */
export function renderTenantChanged(out: Output, command: string, t: TenantRow, line: string, extra: Record<string, unknown> = {}): void {
  if (out.json) out.document({ command, ok: true, tenant: publicTenant(t), ...extra });
  else out.print(line);
}

/**
 * suspend, resume: what changed, or that nothing had to (`changed: false`, still exit 0: cron
 * jobs re-run them), and the sessions a suspend ended.
 */
export function renderSuspended(
  out: Output,
  command: string,
  r: { tenant: TenantRow; changed: boolean; sessionsEnded: number | null; writesRefusedBy?: string[] },
): void {
  const t = r.tenant;
  // A killed operation's write fence outlives a resume: the application reads, its writes stay refused.
  const fenced = t.status === 'active' && r.writesRefusedBy?.length ? r.writesRefusedBy : [];
  const what =
    t.status === 'suspended'
      ? tenantRole(t) === null
        ? 'its rows are refused to the serving role'
        : `its role cannot log in${r.sessionsEnded ? `; ${r.sessionsEnded} open session${r.sessionsEnded === 1 ? '' : 's'} ended` : ''}`
      : fenced.length
        ? `its application has access again, but its writes stay refused: ${fenced.join('; ')}`
        : 'its application has access again';
  const line = r.changed
    ? `${t.slug} is ${t.status}: ${what}`
    : `${t.slug} is already ${t.status}; nothing to do${fenced.length ? `, but its writes stay refused: ${fenced.join('; ')}` : ''}`;
  renderTenantChanged(out, command, t, line, {
    changed: r.changed,
    sessionsEnded: r.sessionsEnded,
    ...(fenced.length ? { writesRefusedBy: fenced } : {}),
  });
}

/** `tenant delete`: the tenant as it was, and the final backup's id when one was taken. */
export function renderTenantDeleted(out: Output, command: string, t: TenantRow, finalBackup: string | undefined): void {
  // The row as it was read under the delete's lock, with the status it has now: gone from the
  // catalog (a script reading `status` must not see the `active` it had before).
  const tenant = { ...publicTenant(t), status: 'deleted', statusDetail: null };
  if (out.json) out.document({ command, ok: true, tenant, finalBackup: finalBackup ?? null });
  else out.print(`deleted ${t.slug}${finalBackup ? ` (final backup ${finalBackup})` : ''}`);
}

/** `tenant create <slug>`: one line when it worked, else the result document. */
export function renderCreated(out: Output, doc: ResultDocument, r: TenantResult): void {
  if (out.json) out.document(doc);
  else if (r.status === 'succeeded')
    out.print(
      out.color.green(`created ${r.tenant}: ${r.model} on ${r.shard} (${r.target})${r.resumed ? ', finishing an earlier attempt' : ''}`),
    );
  else renderResultDocument(out, doc);
}

/**
 * `tenant create --from-file`: the result document, then (on a terminal) how to finish what is
 * left: `finish` is the command that re-runs the same file (existing tenants are skipped).
 */
export function renderBulkCreate(out: Output, doc: ResultDocument, interrupted: boolean, finish: string): void {
  const unfinished = doc.results.filter((r) => r.status === 'failed' || isNotRun(r)).length;
  const todo = interrupted || unfinished > 0;
  // The command that finishes the job is in the document too (`finish`): a CI step reads the JSON.
  renderResultDocument(out, todo ? { ...doc, finish } : doc);
  if (!todo) return;
  const failed = doc.results.some((r) => r.status === 'failed');
  const line = `${interrupted || !failed ? 'to finish' : 'fix the failures, then finish'}: ${finish}`;
  if (out.json) out.error(line);
  else out.print(line);
}
