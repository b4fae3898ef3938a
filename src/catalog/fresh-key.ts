import { randomUUID } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { CatalogDb } from './open.js';
import { nextBigintKey } from './tenants.js';

/** A new tenant's key, by the configured key type (tenant create, restore --as). */
export async function freshKey(config: Config, db: CatalogDb, slug: string): Promise<string> {
  switch (config.tenantKey.type) {
    case 'uuid':
      return randomUUID();
    case 'bigint':
      return nextBigintKey(db);
    case 'text':
      return slug;
  }
}
