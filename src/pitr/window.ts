import type { Shard } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { errorMessage } from '../errors.js';
import { redactText } from '../config/redact.js';
import type { OsUser } from '../dev/os-user.js';
import { pgbackrest } from './pgbackrest.js';
import type { PitrRepo } from './repo.js';

/** One base backup of a stanza, as `pgbackrest info` lists it. */
export interface BaseBackup {
  label: string;
  type: string;
  /** When it started and stopped (ISO); a restore can reach any time from its stop on. */
  start: string;
  stop: string;
  /** Size of the cluster it copied (bytes). */
  size: number;
}

/** What a shard's archiving looks like, and the times it can be restored to. */
export interface ShardWindow {
  shard: string;
  region: string;
  stanza: 'ok' | 'missing' | 'error';
  /** pgBackRest's own word on the stanza, when not ok. */
  stanzaMessage?: string;
  archiveMode: string | null;
  archiveCommand: string | null;
  backups: BaseBackup[];
  lastArchived: { wal: string | null; at: string | null };
  lastFailed: { wal: string | null; at: string | null };
  /** Archiving on, its last attempt succeeded. */
  healthy: boolean;
  /** Oldest base backup's end to the last archived WAL; null without a backup or archived WAL. */
  window: { from: string; to: string } | null;
  problem?: string;
}

interface InfoJson {
  name: string;
  status: { code: number; message: string };
  backup?: { label: string; type: string; timestamp: { start: number; stop: number }; info: { size: number } }[];
}

/**
 * A shard's recoverable window: from the end of its oldest base backup (`pgbackrest info`) to
 * the last WAL segment its cluster archived (pg_stat_archiver, readable by tenantctl's role).
 * Never throws: what it could not read is in `problem`.
 *
 * @example
 *   const w = await shardWindow(config, fleet, repo, user, shard);
 *   w.window; // { from: '2026-12-05T07:00:03.000Z', to: '2026-12-05T07:41:10.512Z' }
 */
export async function shardWindow(fleet: Fleet, repo: PitrRepo, user: OsUser | undefined, shard: Shard): Promise<ShardWindow> {
  const out = emptyWindow(shard);
  const problems: string[] = [];
  try {
    const r = await pgbackrest(repo, user, [`--stanza=${shard.name}`, 'info', '--output=json']);
    const info = (JSON.parse(r.stdout || '[]') as InfoJson[]).find((s) => s.name === shard.name);
    if (r.code !== 0 || !info) {
      out.stanza = 'error';
      out.stanzaMessage = r.stderr.trim().split('\n').at(-1);
    } else if (info.status.code === 1) {
      out.stanza = 'missing';
      out.stanzaMessage = info.status.message;
    } else {
      out.stanza = info.status.code === 0 || info.status.code === 2 ? 'ok' : 'error';
      if (out.stanza === 'error') out.stanzaMessage = info.status.message;
      out.backups = (info.backup ?? []).map((b) => ({
        label: b.label,
        type: b.type,
        start: new Date(b.timestamp.start * 1000).toISOString(),
        // pgBackRest gives whole seconds: the next one is surely after the backup's end.
        stop: new Date((b.timestamp.stop + 1) * 1000).toISOString(),
        size: b.info.size,
      }));
    }
  } catch (err) {
    out.stanza = 'error';
    out.stanzaMessage = redactText(errorMessage(err));
  }
  try {
    await fleet.withClient(shard.name, ADMIN_DATABASE, async (c) => {
      const s = await c.query<{ name: string; setting: string }>(
        `select name, setting from pg_settings where name in ('archive_mode', 'archive_command')`,
      );
      for (const row of s.rows) {
        if (row.name === 'archive_mode') out.archiveMode = row.setting;
        else out.archiveCommand = row.setting;
      }
      const a = await c.query<{ lw: string | null; lt: Date | null; fw: string | null; ft: Date | null }>(
        'select last_archived_wal as lw, last_archived_time as lt, last_failed_wal as fw, last_failed_time as ft from pg_stat_archiver',
      );
      const row = a.rows[0];
      out.lastArchived = { wal: row?.lw ?? null, at: row?.lt?.toISOString() ?? null };
      out.lastFailed = { wal: row?.fw ?? null, at: row?.ft?.toISOString() ?? null };
    });
  } catch (err) {
    problems.push(`shard not reachable: ${redactText(errorMessage(err))}`);
  }
  const failedLast = out.lastFailed.at && (!out.lastArchived.at || out.lastFailed.at > out.lastArchived.at);
  out.healthy = out.archiveMode === 'on' || out.archiveMode === 'always' ? !failedLast && out.stanza === 'ok' : false;
  if (out.archiveMode !== null && out.archiveMode !== 'on' && out.archiveMode !== 'always') problems.push('archive_mode is off');
  if (failedLast) problems.push(`archiving failed at ${out.lastFailed.at} (${out.lastFailed.wal})`);
  if (out.stanza !== 'ok') problems.push(`stanza ${out.stanza}${out.stanzaMessage ? `: ${out.stanzaMessage}` : ''}`);
  const oldest = out.backups[0];
  if (!oldest) problems.push('no base backup yet (tenantctl pitr backup)');
  // pgBackRest finishes a backup only once the WAL it needs is archived (archive-check), and its
  // stop time (whole seconds, taken after that wait) can be later than the last archived segment:
  // the window then is the backup's stop, until newer WAL arrives.
  if (oldest && out.lastArchived.at)
    // biome-ignore lint/complexity/useMathMinMax: ISO timestamps, compared as strings (Math.max would give NaN)
    out.window = { from: oldest.stop, to: out.lastArchived.at > oldest.stop ? out.lastArchived.at : oldest.stop };
  if (problems.length) out.problem = problems.join('; ');
  return out;
}

/** A shard's status before anything is known of it (`problem` says why, when it stays so). */
export function emptyWindow(shard: Shard, problem?: string): ShardWindow {
  return {
    shard: shard.name,
    region: shard.region,
    stanza: 'missing',
    archiveMode: null,
    archiveCommand: null,
    backups: [],
    lastArchived: { wal: null, at: null },
    lastFailed: { wal: null, at: null },
    healthy: false,
    window: null,
    ...(problem ? { problem } : {}),
  };
}

/** `2026-12-05T07:00:03.000Z → 2026-12-05T07:41:10.512Z`, or why there is none. */
export function windowText(w: ShardWindow): string {
  return w.window ? `${w.window.from} → ${w.window.to}` : `none (${w.problem ?? 'no base backup or archived WAL'})`;
}
