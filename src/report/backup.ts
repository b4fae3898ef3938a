import type { Output } from './output.js';
import { renderTable } from './table.js';
import type { BackupEntry } from '../backup/list.js';
import type { VerifyResult } from '../backup/verify.js';
import type { PruneEntry } from '../backup/prune.js';
import type { RestoreResult } from '../backup/restore.js';
import { foreignKeysLine } from './foreign-keys.js';
import { errorText } from './results.js';

/** Renderers of the backup commands: the JSON document with --json, tables and lines otherwise. */
export function mb(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function renderBackupList(out: Output, command: string, rows: BackupEntry[]): void {
  if (out.json) return out.document({ command, ok: true, backups: rows });
  if (rows.length === 0) return out.print('no backups');
  out.print(
    renderTable(
      out,
      ['backup', 'tenant', 'model', 'region', 'created', 'version', 'rows', 'size', 'encrypted'],
      rows.map((r) => [
        r.id,
        r.tenant,
        r.model ?? '',
        r.region,
        r.createdAt ?? r.problem ?? '',
        r.version ?? '',
        r.rows,
        mb(r.bytes),
        r.encrypted ? 'yes' : r.problem ? '' : 'no',
      ]),
    ),
  );
}

export function renderVerify(out: Output, command: string, r: VerifyResult): void {
  if (out.json) return out.document({ command, ...r });
  if (r.ok) {
    out.print(out.color.green(`${r.backup}: intact (${r.tablesChecked} tables, ${r.rows} rows${r.encrypted ? ', decrypted' : ''})`));
    if (r.notValid === null)
      out.print('  constraints: not recorded (an older backup): a restore re-creates NOT VALID what the migrations make so');
    else if (r.notValid.length) {
      out.print('  NOT VALID at the source, re-created NOT VALID by a restore:');
      for (const k of r.notValid) out.print(`    ${k.table}.${k.name} (${k.type}): ${k.restore}`);
    }
  } else out.print(out.color.red(`${r.backup}: DAMAGED\n  ${r.problems.join('\n  ')}`));
}

export function renderPrune(out: Output, command: string, rows: PruneEntry[], dryRun: boolean): void {
  const gone = rows.filter((r) => r.action !== 'kept').length;
  if (out.json)
    return out.document({ command, ok: true, dryRun, deleted: dryRun ? 0 : gone, wouldDelete: dryRun ? gone : 0, backups: rows });
  if (rows.length)
    out.print(
      renderTable(
        out,
        ['backup', 'tenant', 'action', 'why'],
        rows.map((r) => [r.id, r.tenant, r.action, r.reason]),
      ),
    );
  out.print(`${command}: ${dryRun ? `would delete ${gone}` : `deleted ${gone}`}, kept ${rows.length - gone}`);
}

export function renderRestore(out: Output, command: string, r: RestoreResult): void {
  if (out.json) return out.document({ command, ok: r.status === 'succeeded', result: r });
  if (r.status === 'succeeded') {
    out.print(
      out.color.green(
        `restored ${r.backup} ${r.replaced ? 'in place of' : 'as'} ${r.tenant}: ${r.rows} rows, ${r.model} on ${r.shard} (${r.target}${r.role ? `, role ${r.role}` : ''})` +
          replaceTimes(r) +
          (r.safetyBackup ? `; safety backup ${r.safetyBackup}` : ''),
      ),
    );
    if (r.foreignKeyCheck) out.print(foreignKeysLine(r.foreignKeyCheck));
    for (const w of r.warnings ?? []) out.error(out.color.yellow(`warning: ${w}`));
  } else {
    out.print(out.color.red(`restore of ${r.backup} failed: ${errorText(r)}${r.safetyBackup ? ` (safety backup ${r.safetyBackup})` : ''}`));
  }
}

/** `; writes refused 2.1 s, connections refused 0.3 s, 1 session ended` for a replace. */
function replaceTimes(r: RestoreResult): string {
  if (r.writesRefusedMs === undefined) return '';
  const parts = [`writes refused ${seconds(r.writesRefusedMs)}`];
  if (r.unreachableMs) parts.push(`connections refused ${seconds(r.unreachableMs)}`);
  if (r.endedSessions) parts.push(`${r.endedSessions} session${r.endedSessions === 1 ? '' : 's'} ended`);
  return `; ${parts.join(', ')}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A live line on a TTY: rows and bytes so far, and an ETA when the total is known. */
export function progressLine(out: Output): (p: { tenant: string; rows: number; bytes: number; total?: number }) => void {
  if (!out.tty || out.quiet || out.json) return () => undefined;
  const start = Date.now();
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 250) return;
    last = now;
    const secs = (now - start) / 1000;
    const eta = p.total && p.rows > 0 ? ` ETA ${Math.max(0, Math.round((secs * (p.total - p.rows)) / p.rows))}s` : '';
    process.stderr.write(`\r\x1b[K${p.tenant}: ${p.rows}${p.total ? `/${p.total}` : ''} rows${p.bytes ? `, ${mb(p.bytes)}` : ''}${eta}`);
  };
}
