import { describe, expect, it } from 'vitest';
import { planPoolLoad } from '../../src/backup/restore-pool-version.js';
import type { Manifest } from '../../src/backup/manifest.js';
import { EXIT, UsageError } from '../../src/errors.js';
import type { MigrationFile } from '../../src/migrate/files.js';
import type { PlacedTenant } from '../../src/placement/drivers.js';

/** The version a pool restore loads at (issue 16, item 6): the pool's, never migrating the pool. */
const file = (n: number, transactional = true): MigrationFile => {
  const id = `000${n}_m${n}`;
  return { id, number: n, name: `m${n}`, file: `/m/${id}.sql`, kind: 'sql', checksum: `c${n}`, transactional };
};
const files = [file(1), file(2), file(3), file(4)];
const applied = (...ns: number[]) => ns.map((n) => ({ name: `000${n}_m${n}`, checksum: `c${n}` }));
const manifest = (...ns: number[]) =>
  ({
    migrations: {
      version: ns.length ? `000${ns.at(-1)}_m${ns.at(-1)}` : null,
      applied: ns.map((n) => ({ id: `000${n}_m${n}`, checksum: `c${n}` })),
    },
  }) as Manifest;
const pool: PlacedTenant = { slug: 'x', key: 'k', model: 'pool', shard: 'us1', database_name: 'tenant_pool', schema_name: 'app' };
const o = { backupId: 'acme.1', pool, replacing: false };

async function refusal(p: Promise<unknown>): Promise<UsageError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  expect((err as UsageError).exitCode).toBe(EXIT.usage);
  return err as UsageError;
}

describe('planPoolLoad', () => {
  it('loads at the pool version: directly when the backup is at it, staged up to it (never to head) when older', async () => {
    expect(await planPoolLoad(files, applied(1, 2, 3), manifest(1, 2, 3), o)).toEqual({
      files: files.slice(0, 3),
      version: '0003_m3',
      fresh: false,
      staged: false,
    });
    expect(await planPoolLoad(files, applied(1, 2, 3), manifest(1, 2), o)).toMatchObject({ version: '0003_m3', staged: true });
  });

  it('a pool never migrated is made at head first, as tenant create makes one', async () => {
    expect(await planPoolLoad(files, [], manifest(1, 2), o)).toMatchObject({ version: '0004_m4', fresh: true, staged: true });
  });

  it('refuses a backup newer than the pool, naming both versions and the migrate up that makes it possible', async () => {
    const err = await refusal(planPoolLoad(files, applied(1, 2), manifest(1, 2, 3), o));
    expect(err.code).toBe('POOL_VERSION');
    expect(err.message).toContain('backup acme.1 is at migration version 0003_m3 and the pool us1/tenant_pool/app is at 0002_m2');
    expect(err.message).toContain('lacks 0003_m3');
    expect(err.hint).toContain('tenantctl migrate up --shard us1 --model pool');
  });

  it('refuses a pool at migrations the folder does not hold, and a staging that would run a no-transaction file', async () => {
    const unknown = await refusal(planPoolLoad(files, [...applied(1), { name: '0002_m2', checksum: 'changed' }], manifest(1), o));
    expect(unknown.code).toBe('MIGRATION_FILES');
    expect(unknown.message).toContain('0002_m2');
    const noTx = [file(1), file(2), file(3, false)];
    const err = await refusal(planPoolLoad(noTx, applied(1, 2, 3), manifest(1, 2), o));
    expect(err.code).toBe('MIGRATION_FILES');
    expect(err.message).toMatch(/0003_m3\.sql runs outside a transaction/);
    // At the pool's own version nothing runs in the transaction: allowed.
    expect(await planPoolLoad(noTx, applied(1, 2, 3), manifest(1, 2, 3), o)).toMatchObject({ staged: false });
  });
});
