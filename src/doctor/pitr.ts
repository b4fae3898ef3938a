import { existsSync } from 'node:fs';
import type { CatalogDb } from '../catalog/open.js';
import type { Config } from '../config/types.js';
import type { Fleet } from '../fleet/fleet.js';
import { clusterOsUser } from '../dev/os-user.js';
import { findPgbackrest, PGBACKREST_PACKAGE } from '../pitr/pgbackrest.js';
import { pitrRepo } from '../pitr/repo.js';
import { scratchRecords } from '../pitr/sweep.js';
import { shardWindow, windowText, type ShardWindow } from '../pitr/window.js';
import type { Check } from './types.js';

/**
 * Point-in-time restore, per shard: its recoverable window and whether archiving is healthy.
 * A failure only where the config asks for it (regions.<r>.pitr); the dev fleet's default
 * repository is information. Reads only: a shard never set up (no pgBackRest config written by
 * `pitr setup` or `dev up`) is said so without running pgBackRest.
 */
export async function pitrChecks(config: Config, fleet: Fleet): Promise<Check[]> {
  const asked = Object.values(config.regions).some((r) => r.pitr);
  if (!(await findPgbackrest())) {
    return [
      {
        check: 'pgbackrest',
        ok: !asked,
        detail: `not installed: point-in-time restore (restore --at) is unavailable; apt-get install -y ${PGBACKREST_PACKAGE}`,
      },
    ];
  }
  const out: Check[] = [];
  const user = await clusterOsUser();
  for (const shard of config.shards) {
    const repo = pitrRepo(config, shard.region);
    if (!repo) continue;
    const required = Boolean(config.regions[shard.region]?.pitr);
    if (!existsSync(repo.configFile)) {
      out.push({ check: `pitr window on ${shard.name}`, ok: !required, detail: `not set up: tenantctl pitr setup --shard ${shard.name}` });
      continue;
    }
    out.push(windowCheck(shard, required, await shardWindow(fleet, repo, user, shard)));
  }
  return out;
}

/**
 * One shard's window as a check: a failure when the config asks for point-in-time restore there;
 * otherwise archiving that is not healthy (a shard unreachable, archive_command failing) is a
 * warning, never a bare "ok" beside "not healthy".
 */
export function windowCheck(shard: { name: string; region: string }, required: boolean, w: ShardWindow): Check {
  const usable = w.healthy && w.window !== null;
  // Not asked for, archiving that works with no base backup yet is information (a fresh dev fleet); archiving that fails is not.
  const notAsked = !required && !w.healthy;
  return {
    check: `pitr window on ${shard.name}`,
    ok: !required || usable,
    ...(notAsked ? { warning: true } : {}),
    detail: `${windowText(w)}; archiving ${w.healthy ? 'healthy' : 'not healthy'}${
      notAsked ? ` (regions.${shard.region}.pitr is not set, so doctor does not fail on it)` : ''
    }`,
  };
}

/** Scratch clusters of restores to a point in time: running ones, and killed ones the next pitr command removes. */
export async function pitrScratchCheck(db: CatalogDb): Promise<Check> {
  const rows = await scratchRecords(db);
  const killed = rows.filter((r) => !r.live);
  return {
    check: 'pitr scratch clusters',
    ok: killed.length === 0,
    detail: rows.length
      ? rows
          .map(
            (r) =>
              `${r.scratch} (${r.tenant ?? '?'}, ${r.live ? `running: ${r.holder}` : 'killed: the next pitr command, or any operation of that tenant, removes it'})`,
          )
          .join('; ')
      : 'none',
  };
}
