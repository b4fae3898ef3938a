import type { Output } from './output.js';
import { renderTable } from './table.js';
import type { ShardWindow } from '../pitr/window.js';
import type { PitrBackupResult, SetupResult } from '../pitr/setup.js';
import type { PitrPhase, RestoreAtResult } from '../pitr/restore-at.js';
import { human } from '../pitr/disk.js';
import { errorText } from './results.js';
import { windowText } from '../pitr/window.js';

/** Renderers of `pitr setup | backup | status` and `restore --at`. */
export function renderPitrSetup(out: Output, command: string, rows: SetupResult[]): void {
  const ok = rows.every((r) => r.needs.every((n) => n.ok) && r.stanza === 'ok');
  if (out.json) return out.document({ command, ok, shards: rows });
  for (const r of rows) {
    out.print(`shard ${r.shard} (region ${r.region}), pgBackRest config ${r.configFile}`);
    for (const n of r.needs) {
      const mark = n.ok ? out.color.green('ok  ') : out.color.red('SET ');
      out.print(`  ${mark} ${n.setting} = '${n.want}'${n.ok ? '' : `  (now: ${n.have ?? 'hidden from tenantctl'})`}`);
    }
    out.print(
      `  ${r.stanza === 'ok' ? out.color.green('ok  ') : out.color.red('FIX ')} stanza ${r.shard}: ${r.stanzaAction}${r.stanzaError ? ` (${r.stanzaError})` : ''}`,
    );
    out.print(`  window: ${windowText(r)}`);
  }
  if (!ok) out.error('archive_mode needs a restart of the cluster; see the README ("Point-in-time restore") for the four settings');
}

export function renderPitrBackup(out: Output, command: string, rows: PitrBackupResult[]): void {
  const ok = rows.every((r) => r.status === 'succeeded');
  if (out.json) return out.document({ command, ok, results: rows });
  for (const r of rows) {
    out.print(
      r.status === 'succeeded'
        ? out.color.green(`${r.shard}: ${r.type} backup ${r.label ?? ''} in ${(r.durationMs / 1000).toFixed(1)} s`)
        : out.color.red(`${r.shard}: ${r.type} backup failed: ${r.error ?? ''}`),
    );
  }
}

export function renderPitrStatus(out: Output, command: string, rows: ShardWindow[]): void {
  const ok = rows.every((r) => r.healthy && r.window);
  if (out.json) return out.document({ command, ok, shards: rows });
  out.print(
    renderTable(
      out,
      ['shard', 'archiving', 'base backups', 'recoverable window', 'last archived'],
      rows.map((r) => [
        r.shard,
        r.healthy ? 'healthy' : `NOT healthy${r.problem ? `: ${r.problem}` : ''}`,
        r.backups.length,
        r.window ? `${r.window.from} → ${r.window.to}` : 'none',
        r.lastArchived.wal ? `${r.lastArchived.wal} at ${r.lastArchived.at}` : '',
      ]),
    ),
  );
  // Exit 1 with no window is the usual state of a new fleet: say what opens one.
  const noBackup = rows.filter((r) => r.healthy && !r.window).map((r) => r.shard);
  if (noBackup.length) {
    out.info(
      `no recoverable window on ${noBackup.join(', ')}: take a base backup (tenantctl pitr backup --type full); the window starts at its end`,
    );
  }
}

/** A phase line on stderr (a live view on a TTY, plain lines elsewhere; with --json too: stdout keeps its one document), never with --quiet. */
export function phaseLine(out: Output): (phase: PitrPhase, detail: string) => void {
  if (out.quiet) return () => undefined;
  let last = '';
  let at = 0;
  return (phase, detail) => {
    const now = Date.now();
    if (phase === last && (!out.tty || now - at < 250)) return;
    if (out.tty) process.stderr.write(`\r\x1b[K${phase}: ${detail}`);
    else process.stderr.write(`${phase}: ${detail}\n`);
    if (out.tty && phase !== last && last) process.stderr.write('\n');
    last = phase;
    at = now;
  };
}

export function renderRestoreAt(out: Output, command: string, r: RestoreAtResult): void {
  if (out.json) return out.document({ command, ok: r.status === 'succeeded', result: r });
  if (r.status !== 'succeeded') {
    out.print(out.color.red(`restore of ${r.backup} failed: ${errorText(r)}${r.safetyBackup ? ` (safety backup ${r.safetyBackup})` : ''}`));
    return;
  }
  out.print(
    out.color.green(
      `restored ${r.backup} ${r.replaced ? 'in place of' : 'as'} ${r.tenant}: ${r.rows} rows, ${r.model} on ${r.shard}` +
        (r.safetyBackup ? `; safety backup ${r.safetyBackup}` : ''),
    ),
  );
  out.print(`  time reached: ${r.reached ?? 'unknown'} (asked ${r.at}; window ${r.window.from} → ${r.window.to})`);
  out.print(`  pgBackRest restored ${human(r.restoredBytes)}; WAL replayed ${human(r.walReplayedBytes)}`);
  out.print(`  rows: ${r.tables.map((t) => `${t.table} ${t.rows}`).join(', ')}`);
  out.print(`  verified: ${r.verification}`);
  out.print(`  phases: ${r.phases.map((p) => `${p.phase} ${(p.ms / 1000).toFixed(1)} s`).join(', ')}`);
  for (const w of r.warnings ?? []) out.error(out.color.yellow(`warning: ${w}`));
}
