import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../errors.js';
import { manifestBody, type Manifest } from './manifest.js';

/**
 * The MAC of an encrypted archive's manifest (format 4): HMAC-SHA256 over its canonical body,
 * keyed by HKDF-SHA256(data key, info 'tenantctl manifest'). Only someone holding the tenant's
 * data key (so the master key and the catalog) can write a manifest that passes; the key used
 * for the MAC is never the one that encrypts the data.
 */
export function manifestMac(m: Omit<Manifest, 'checksum' | 'mac'>, dataKey: Buffer): string {
  const key = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'tenantctl manifest', 32));
  return createHmac('sha256', key).update(manifestBody(m)).digest('hex');
}

/**
 * Refuse (exit 2) an encrypted archive whose manifest's MAC does not match. A manifest of format
 * 1-3 has none (written before the MAC existed) and is accepted as it was.
 */
export function assertManifestMac(m: Manifest, dataKey: Buffer, where: string): void {
  if (m.mac === undefined) return;
  const want = Buffer.from(manifestMac(m, dataKey), 'hex');
  if (!timingSafeEqual(want, Buffer.from(m.mac, 'hex')))
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json was altered (its MAC does not match the tenant's data key)`,
      'nothing was changed; use another backup (tenantctl backup list)',
    );
}
