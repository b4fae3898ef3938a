import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { json, type MigrateEnv } from './migrate-env.js';

/**
 * Create a test's tenants through the CLI in ONE `tenant create --from-file` run instead of one
 * `tenant create` per tenant: each CLI start costs about half a CPU-second, and these tenants
 * are only the test's setup. Expects exit 0 and every row created.
 *
 * @example
 *   await createViaFile(e, [{ slug: 'a', model: 'pool', shard: 'us1' }, { slug: 'b', tier: 'tight', shard: 'us1' }]);
 */
export async function createViaFile(e: MigrateEnv, rows: { slug: string; model?: string; tier?: string; shard?: string }[]): Promise<void> {
  const file = join(e.migrationsDir, '..', `create-${rows[0].slug}.csv`);
  const lines = rows.map((r) => [r.slug, r.model ?? '', r.tier ?? '', r.shard ?? ''].join(','));
  await writeFile(file, `slug,model,tier,shard\n${lines.join('\n')}\n`);
  const r = await e.cli(['tenant', 'create', '--from-file', file, '--concurrency', String(rows.length), '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(json(r).summary).toMatchObject({ succeeded: rows.length });
}
