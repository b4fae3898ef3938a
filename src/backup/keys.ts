import { randomBytes, randomUUID } from 'node:crypto';
import type { CatalogDb } from '../catalog/open.js';
import { UsageError } from '../errors.js';
import { masterKey, unwrapKey, wrapKey } from './crypto.js';

/**
 * Per-tenant data keys for encrypted backups. Each tenant's archives are encrypted with a key of
 * its own, stored only wrapped by the master key (TENANTCTL_BACKUP_KEY), in the catalog. Forgetting
 * the key erases every archive of that tenant at once (crypto-shredding) and touches no other
 * tenant's backups.
 */
export interface DataKey {
  keyId: string;
  key: Buffer;
}

/** The tenant's live data key, made on first use. */
export async function tenantDataKey(db: CatalogDb, slug: string): Promise<DataKey> {
  const master = masterKey();
  for (let attempt = 0; attempt < 3; attempt++) {
    const row = await db
      .selectFrom('backup_keys')
      .select(['key_id', 'wrapped'])
      .where('slug', '=', slug)
      .where('wrapped', 'is not', null)
      .executeTakeFirst();
    if (row?.wrapped) return { keyId: row.key_id, key: unwrapKey(master, row.wrapped) };
    // A first key is wrapped with the master key the catalog's other keys were wrapped with, or
    // not at all: a wrong TENANTCTL_BACKUP_KEY would otherwise be taken for this tenant, and the
    // catalog would hold keys under two master keys, half of them unreadable with either.
    const other = await db.selectFrom('backup_keys').select('wrapped').where('wrapped', 'is not', null).limit(1).executeTakeFirst();
    if (other?.wrapped) unwrapKey(master, other.wrapped);
    const key = randomBytes(32);
    const keyId = randomUUID();
    // Two first backups at once: the unique index on live keys lets one win; the other reads it.
    const ins = await db
      .insertInto('backup_keys')
      .values({ key_id: keyId, slug, wrapped: wrapKey(master, key) })
      .onConflict((oc) => oc.column('slug').where('wrapped', 'is not', null).doNothing())
      .executeTakeFirst();
    if (Number(ins.numInsertedOrUpdatedRows ?? 0) === 1) return { keyId, key };
  }
  throw new Error(`could not create a backup data key for tenant "${slug}"`);
}

/** The data key an archive was written with, or exit 2 saying it was forgotten. */
export async function dataKeyById(db: CatalogDb, keyId: string, slug: string): Promise<Buffer> {
  const row = await db.selectFrom('backup_keys').selectAll().where('key_id', '=', keyId).executeTakeFirst();
  if (!row) {
    throw new UsageError(
      'BACKUP_KEY',
      `the data key ${keyId} of tenant "${slug}" is not in this catalog`,
      'use the catalog the backup was made with',
    );
  }
  if (!row.wrapped) {
    throw new UsageError(
      'BACKUP_KEY',
      `the data key of tenant "${slug}" was destroyed (backup forget-key) on ${row.destroyed_at?.toISOString() ?? 'an earlier date'}; this archive can no longer be read`,
      'nothing can recover it: that is what forget-key is for',
    );
  }
  return unwrapKey(masterKey(), row.wrapped);
}

/** Destroy every data key of the tenant; returns how many were live. */
export async function forgetKeys(db: CatalogDb, slug: string): Promise<number> {
  const r = await db
    .updateTable('backup_keys')
    .set({ wrapped: null, destroyed_at: new Date() })
    .where('slug', '=', slug)
    .where('wrapped', 'is not', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}
