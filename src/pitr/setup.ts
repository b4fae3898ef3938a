import type { Config, Shard } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { UsageError } from '../errors.js';
import { archiveCommand, pitrRepo, requirePitrRepo, stanzaOf, writePitrConfig, type PitrRepo } from './repo.js';
import { pgbackrest, requirePgbackrest } from './pgbackrest.js';
import { emptyWindow, shardWindow, type ShardWindow } from './window.js';

/** What `pitr setup` found and did for one shard. */
export interface SetupResult extends ShardWindow {
  configFile: string;
  /** The settings the shard's cluster needs (postgresql.conf), with whether they are in place. */
  needs: { setting: string; want: string; have: string | null; ok: boolean }[];
  /** Created now, already there, or why not. */
  stanzaAction: 'created' | 'exists' | 'not created';
  stanzaError?: string;
}

/** The shards a pitr command acts on: one (--shard) or all. */
export function pitrShards(config: Config, shard?: string): Shard[] {
  if (!shard) return config.shards;
  const s = config.shards.find((x) => x.name === shard);
  if (!s) throw new UsageError('UNKNOWN_SHARD', `unknown shard "${shard}"`, `use one of: ${config.shards.map((x) => x.name).join(', ')}`);
  return [s];
}

/**
 * Check what each shard needs for WAL archiving with pgBackRest and create its stanza where it
 * can (the cluster archives, pgBackRest reaches it): the region's config file is written first.
 * Changes nothing on the shards' settings: archive_mode needs a restart, the operator's call.
 *
 * @example
 *   const [r] = await pitrSetup(config, fleet, 'us1');
 *   r.needs; // [{ setting: 'archive_mode', want: 'on', have: 'on', ok: true }, …]
 */
export async function pitrSetup(config: Config, fleet: Fleet, shard?: string): Promise<SetupResult[]> {
  await requirePgbackrest();
  const out: SetupResult[] = [];
  for (const s of pitrShards(config, shard)) {
    const repo = requirePitrRepo(config, s.region);
    stanzaOf(config, s); // a shard whose data directory is unknown: exit 2 naming the setting
    const user = await writePitrConfig(config, repo);
    let w = await shardWindow(fleet, repo, user, s);
    let stanzaAction: SetupResult['stanzaAction'] = w.stanza === 'ok' ? 'exists' : 'not created';
    let stanzaError: string | undefined;
    if (w.stanza !== 'ok') {
      const r = await pgbackrest(repo, user, [`--stanza=${s.name}`, 'stanza-create']);
      if (r.code === 0) {
        stanzaAction = 'created';
        w = await shardWindow(fleet, repo, user, s);
      } else stanzaError = lastLine(r.stderr || r.stdout);
    }
    out.push({ ...w, configFile: repo.configFile, needs: needs(repo, s.name, w), stanzaAction, ...(stanzaError ? { stanzaError } : {}) });
  }
  return out;
}

function needs(repo: PitrRepo, stanza: string, w: ShardWindow): SetupResult['needs'] {
  const cmd = archiveCommand(repo, stanza);
  return [
    { setting: 'archive_mode', want: 'on', have: w.archiveMode, ok: w.archiveMode === 'on' || w.archiveMode === 'always' },
    // Hidden from a role without pg_read_all_settings: null is "cannot tell", not wrong.
    { setting: 'archive_command', want: cmd, have: w.archiveCommand, ok: w.archiveCommand === null || w.archiveCommand === cmd },
  ];
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).at(-1) ?? '';
}

/** One shard's base backup. */
export interface PitrBackupResult {
  shard: string;
  status: 'succeeded' | 'failed';
  type: 'full' | 'incr';
  label?: string;
  durationMs: number;
  error?: string;
}

/**
 * Take a base backup of each shard with pgBackRest (cron: a weekly full, a daily incremental).
 * An incremental backup without a full one before it is taken as a full one by pgBackRest.
 *
 * @example
 *   await pitrBackup(config, fleet, { shard: 'us1', type: 'full' });
 */
export async function pitrBackup(config: Config, fleet: Fleet, o: { shard?: string; type: 'full' | 'incr' }): Promise<PitrBackupResult[]> {
  await requirePgbackrest();
  const out: PitrBackupResult[] = [];
  for (const s of pitrShards(config, o.shard)) {
    const started = Date.now();
    const repo = requirePitrRepo(config, s.region);
    stanzaOf(config, s);
    const user = await writePitrConfig(config, repo);
    const r = await pgbackrest(repo, user, [`--stanza=${s.name}`, `--type=${o.type}`, 'backup']);
    if (r.code !== 0) {
      out.push({ shard: s.name, status: 'failed', type: o.type, durationMs: Date.now() - started, error: lastLine(r.stderr || r.stdout) });
      continue;
    }
    const w = await shardWindow(fleet, repo, user, s);
    out.push({ shard: s.name, status: 'succeeded', type: o.type, label: w.backups.at(-1)?.label, durationMs: Date.now() - started });
  }
  return out;
}

/** Every shard's window (pitr status, doctor). */
export async function pitrStatus(config: Config, fleet: Fleet, shard?: string): Promise<ShardWindow[]> {
  await requirePgbackrest();
  const out: ShardWindow[] = [];
  for (const s of pitrShards(config, shard)) {
    const repo = pitrRepo(config, s.region);
    if (!repo) {
      out.push(emptyWindow(s, `no pgBackRest repository: set regions.${s.region}.pitr.repo`));
      continue;
    }
    const user = await writePitrConfig(config, repo);
    out.push(await shardWindow(fleet, repo, user, s));
  }
  return out;
}
