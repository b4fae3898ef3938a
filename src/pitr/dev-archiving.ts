import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config, Shard } from '../config/types.js';
import { findPgbackrest, pgbackrest } from './pgbackrest.js';
import { archiveCommand, pitrRepo, writePitrConfig } from './repo.js';

/**
 * What an operator does to a real shard for archiving, done by `dev up` for an embedded one when
 * pgBackRest is installed: the region's pgBackRest config written; archive_mode, archive_command
 * and archive_timeout in the cluster's postgresql.auto.conf (read at start); and peer
 * authentication on the cluster's own socket for the `postgres` OS user, as which pgBackRest
 * connects. Returns false (nothing done) without pgBackRest.
 */
export async function prepareDevArchiving(config: Config, shard: Shard, dataDir: string): Promise<boolean> {
  if (!(await findPgbackrest())) return false;
  const repo = pitrRepo(config, shard.region);
  if (!repo) return false;
  await writePitrConfig(config, repo);
  const auto = join(dataDir, 'postgresql.auto.conf');
  const ours = /^(archive_mode|archive_command|archive_timeout)\s*=/;
  const kept = (await readFile(auto, 'utf8').catch(() => '')).split('\n').filter((l) => l && !ours.test(l));
  const quoted = (v: string) => `'${v.replace(/'/g, "''")}'`;
  kept.push(
    `archive_mode = 'on'`,
    `archive_command = ${quoted(archiveCommand(repo, shard.name))}`,
    // A quiet shard still closes a WAL segment a minute: the window's end is at most that old.
    `archive_timeout = '60s'`,
  );
  await writeFile(auto, `${kept.join('\n')}\n`);
  const hba = join(dataDir, 'pg_hba.conf');
  const peer = 'local all postgres peer';
  const text = await readFile(hba, 'utf8');
  if (!text.split('\n').includes(peer)) await writeFile(hba, `# pgBackRest (tenantctl dev up)\n${peer}\n${text}`);
  return true;
}

/** After the cluster started: its stanza, created when missing (idempotent in pgBackRest). */
export async function ensureDevStanza(config: Config, shard: Shard): Promise<void> {
  const repo = pitrRepo(config, shard.region);
  if (!repo) return;
  const user = await writePitrConfig(config, repo);
  const r = await pgbackrest(repo, user, [`--stanza=${shard.name}`, 'stanza-create']);
  if (r.code !== 0) throw new Error(`pgbackrest stanza-create for ${shard.name}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
}
