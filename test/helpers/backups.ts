import { expect } from 'vitest';
import { json, type MigrateEnv } from './migrate-env.js';

/**
 * Back up several tenants in ONE `backup create` run (one CLI start instead of one per tenant;
 * each tenant still gets its own snapshot, archive and data key). Expects exit 0 and every
 * tenant succeeded; returns the archive ids in the order of `slugs`.
 *
 * @example
 *   const [pid, sid] = await backupsOf(e, ['kill-p', 'kill-s']);
 */
export async function backupsOf(e: MigrateEnv, slugs: string[], env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const r = await e.cli(['backup', 'create', ...slugs, '--json'], { env });
  expect(r.code, r.stderr + r.stdout).toBe(0);
  const results: { tenant: string; status: string; backup: string }[] = json(r).results;
  return slugs.map((slug) => {
    const row = results.find((x) => x.tenant === slug);
    expect(row?.status, `${slug}: ${JSON.stringify(row)}`).toBe('succeeded');
    return row!.backup;
  });
}
