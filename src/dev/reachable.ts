import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * As root, PostgreSQL runs as another OS user, which must be able to pass through every folder
 * above its binaries and its data. A checkout in a private folder (under /root, say) is not
 * passable, so the dev fleet then keeps what the cluster needs under the system's temp folder.
 */
export function needsRelocation(dir: string): boolean {
  return process.getuid?.() === 0 && !othersCanEnter(dir);
}

/** Every existing folder from dir up to / lets other users pass through (o+x). */
export function othersCanEnter(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    const st = statSync(d, { throwIfNoEntry: false });
    if (st && (st.mode & 0o001) === 0) return false;
    if (dirname(d) === d) return true;
  }
}

/** A stable folder under the temp folder for `what` of `path`, so every command finds the same one. */
export function relocatedPath(what: string, path: string): string {
  return join(tmpdir(), `tenantctl-${what}-${createHash('sha256').update(path).digest('hex').slice(0, 12)}`);
}
