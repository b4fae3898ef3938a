import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config/types.js';
import { errorMessage, UsageError } from '../errors.js';
import { MANIFEST_FILE, compressionOf, parseManifest, type Manifest, type ManifestTable } from './manifest.js';
import { decompressStream } from './compression.js';
import { findBackup } from './regions.js';
import { slugOfBackupId, type BackupStorage } from './storage.js';
import { decryptStream } from './crypto.js';
import { ByteTap } from './byte-tap.js';

export interface OpenArchive {
  id: string;
  region: string;
  storage: BackupStorage;
  manifest: Manifest;
  /**
   * A live source instead of stored files (restore --at: each table's COPY text streamed from the
   * scratch cluster while it is loaded). No stored bytes, so nothing of them to check: the rows'
   * counts and digests in its manifest were taken at the source, and the load is verified by them.
   */
  live?: {
    tableText(t: ManifestTable): Readable;
    /** Settles once the manifest's per-table rows and hashes are in (taken while the placement is built). */
    digested: Promise<void>;
  };
}

/** Find a backup and read its manifest (format, shape and checksum checked). */
export async function openArchive(config: Config, id: string): Promise<OpenArchive> {
  const { region, storage } = await findBackup(config, id);
  let text: string;
  try {
    text = await storage.readText(id, MANIFEST_FILE);
  } catch (err) {
    const missing = (err as { code?: string }).code === 'ENOENT' || (err instanceof UsageError && err.code === 'BAD_ARCHIVE');
    throw new UsageError(
      'BAD_ARCHIVE',
      missing
        ? `backup ${id} has no manifest.json (incomplete or damaged)`
        : `backup ${id}: its manifest.json cannot be read (${errorMessage(err)})`,
      'use another backup (tenantctl backup list)',
    );
  }
  const manifest = parseManifest(text, `backup ${id}`);
  if (manifest.id !== id)
    throw new UsageError('BAD_ARCHIVE', `backup ${id}: its manifest names another backup (${manifest.id})`, 'archives must not be renamed');
  // The id (and so the folder) names the tenant: an archive of one tenant filed, and its id
  // edited, under another's is refused, never restored over the tenant its manifest names.
  const filedUnder = slugOfBackupId(id);
  if (filedUnder !== manifest.tenant.slug)
    throw new UsageError(
      'BAD_ARCHIVE',
      `backup ${id} is filed under tenant ${filedUnder ?? '(none)'} but its manifest is of tenant ${manifest.tenant.slug}`,
      'archives must not be moved or renamed; use another backup (tenantctl backup list)',
    );
  // Residency: a region's backups are written only to its own storage, and read only from it.
  if (manifest.tenant.region !== region)
    throw new UsageError(
      'RESIDENCY',
      `backup ${id} is of region ${manifest.tenant.region} but lies in region ${region}'s backup storage (${storage.location}); a region's backups are read only from its own storage`,
      `nothing was read; put the archive back in region ${manifest.tenant.region}'s backup storage (regions.${manifest.tenant.region}.backup)`,
    );
  return { id, region, storage, manifest };
}

/** Every stored file of the archive: the tables' data files and the pg_dump file. */
export function storedFiles(m: Manifest): { file: string; bytes: number; sha256: string }[] {
  const files = m.tables.map((t) => ({ file: t.file, ...t.stored }));
  if (m.dump) files.push({ file: m.dump.file, ...m.dump.stored });
  return files;
}

/**
 * Check each stored file's size and SHA-256 against the manifest, reading the bytes as stored
 * (no key needed). Returns the problems; none means intact.
 */
export async function checkStoredFiles(a: OpenArchive): Promise<string[]> {
  const problems: string[] = [];
  for (const f of storedFiles(a.manifest)) {
    const size = await a.storage.size(a.id, f.file);
    if (size === null) {
      problems.push(`${f.file} is missing`);
      continue;
    }
    if (size !== f.bytes) {
      problems.push(`${f.file} is ${size} bytes; the manifest says ${f.bytes} (truncated or altered)`);
      continue;
    }
    const tap = new ByteTap();
    await pipeline(a.storage.read(a.id, f.file), tap, new Writable({ write: (_c, _e, cb) => cb() }));
    if (tap.stored().sha256 !== f.sha256) problems.push(`${f.file} does not match its SHA-256 in the manifest (altered)`);
  }
  return problems;
}

/** Throw exit 2 naming every damaged file, before anything is changed. */
export async function assertIntact(a: OpenArchive): Promise<void> {
  const problems = await checkStoredFiles(a);
  if (problems.length) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `backup ${a.id} is damaged: ${problems.join('; ')}`,
      'nothing was changed; use another backup (tenantctl backup list)',
    );
  }
}

/** A table's COPY text from the archive: stored bytes → decrypt (with the key) → decompress. */
export function tableText(a: OpenArchive, t: ManifestTable, key: Buffer | null): Readable[] {
  if (a.live) return [a.live.tableText(t)];
  const chain: Readable[] = [a.storage.read(a.id, t.file)];
  if (a.manifest.encryption) {
    if (!key) throw new UsageError('BACKUP_KEY', `backup ${a.id} is encrypted and no data key was given`, 'set TENANTCTL_BACKUP_KEY');
    chain.push(decryptStream(key, `backup ${a.id} ${t.file}`));
  }
  chain.push(decompressStream(compressionOf(a.manifest)));
  return chain;
}
