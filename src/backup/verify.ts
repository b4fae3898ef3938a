import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config/types.js';
import type { CatalogDb } from '../catalog/open.js';
import { errorMessage } from '../errors.js';
import { RowTap } from '../copy/row-tap.js';
import { isLegacyRowHash } from '../build/digest.js';
import { checkStoredFiles, openArchive, tableText } from './archive.js';
import { archiveDataKey } from './archive-key.js';
import { assertManifestMac } from './manifest-mac.js';
import { restoreNeeds, type NotValidNeed } from './verify-constraints.js';

export interface VerifyResult {
  backup: string;
  tenant: string;
  ok: boolean;
  encrypted: boolean;
  /** Tables whose rows were decompressed and counted and hashed (all of them when ok). */
  tablesChecked: number;
  rows: number;
  problems: string[];
  /** Constraints NOT VALID at the source and what a restore does for them; null: not recorded (format < 3). */
  notValid: NotValidNeed[] | null;
}

/**
 * `backup verify`: the manifest (format, shape, its checksum), every stored file's size and
 * SHA-256, then every table's data decompressed (and decrypted) with its row count and SHA-256
 * compared (and an older archive's RowTap row hash; a newer one's digest is PostgreSQL's, checked
 * by the restore that loads it); and what a restore must do for the constraints the source had NOT VALID
 * (`notValid`, from the manifest: they come back NOT VALID). Needs no database, except the catalog for an encrypted archive's data key
 * (`catalog` is called only then). A damaged manifest throws (exit 2); damaged data is a result.
 *
 * @example
 *   const r = await verifyBackup(config, 'acme.20261126T225317123Z', () => ctx.catalog());
 *   r.ok // true
 */
export async function verifyBackup(config: Config, id: string, catalog: () => Promise<CatalogDb>): Promise<VerifyResult> {
  const a = await openArchive(config, id);
  const m = a.manifest;
  // An encrypted archive's manifest is checked against its data key first (a forgery: exit 2).
  const key = m.encryption ? await archiveDataKey(await catalog(), a) : null;
  if (key) assertManifestMac(m, key, `backup ${id}`);
  const problems = await checkStoredFiles(a);
  let checked = 0;
  let rows = 0;
  if (problems.length === 0) {
    for (const t of m.tables) {
      // The rows' digest of a newer archive is PostgreSQL's (src/build/digest.ts), checked when it
      // is restored; here its count and SHA-256. An older archive's RowTap hash is checked too.
      const legacy = isLegacyRowHash(t.hash);
      const tap = new RowTap({ keyIndex: t.columns.indexOf(t.keyColumn), rowHash: legacy });
      try {
        await pipeline([...tableText(a, t, key), tap, new Writable({ write: (_c, _e, cb) => cb() })] as never);
      } catch (err) {
        problems.push(`${t.file}: ${errorMessage(err)}`);
        continue;
      }
      const d = tap.digest();
      if (d.rows !== t.rows) problems.push(`${t.table}: ${d.rows} rows in the data, ${t.rows} in the manifest`);
      else if (d.sha256 !== t.sha256 || (legacy && d.hash !== t.hash)) problems.push(`${t.table}: data does not match its checksums`);
      else {
        checked++;
        rows += d.rows;
      }
    }
  }
  return {
    backup: id,
    tenant: m.tenant.slug,
    ok: problems.length === 0,
    encrypted: Boolean(m.encryption),
    tablesChecked: checked,
    rows,
    problems,
    notValid: restoreNeeds(m),
  };
}
