import type { Readable, Writable } from 'node:stream';
import { UsageError } from '../errors.js';

/**
 * Where archives live. Backup logic sees only this, so an object store can be added beside the
 * filesystem without touching it. An archive is a set of named files under a backup id
 * (`<slug>.<UTC time>`); it is published whole by `commit`, so a half-written archive is never
 * listed or read.
 */
export interface BackupStorage {
  /** For messages: `/var/backups/us-east`. */
  readonly location: string;
  begin(id: string): Promise<ArchiveWriter>;
  /** Ids of complete archives, optionally of one tenant. */
  list(slug?: string): Promise<string[]>;
  has(id: string): Promise<boolean>;
  read(id: string, file: string): Readable;
  readText(id: string, file: string): Promise<string>;
  /** Stored size of one file, or null when it is missing. */
  size(id: string, file: string): Promise<number | null>;
  remove(id: string): Promise<void>;
  /**
   * Replace one file of a published archive whole (a reader sees the old text or the new), or
   * remove it: only for `backup forget-key`, which erases the copies of a data key the archives
   * carry (src/backup/forget-key.ts).
   */
  replaceText(id: string, file: string, text: string): Promise<void>;
  removeFile(id: string, file: string): Promise<void>;
  /**
   * Remove the tenant's unpublished archives (a killed backup's partial write, a killed remove's
   * leftover), or only those of `only` (names from `partials`); returns the names removed. Only
   * for a caller that knows none of them is live.
   */
  removePartials(slug: string, only?: string[]): Promise<string[]>;
  /** The names of the tenant's unpublished archives, removing nothing (doctor). */
  partials(slug?: string): Promise<string[]>;
}

export interface ArchiveWriter {
  write(file: string): Writable;
  writeText(file: string, text: string): Promise<void>;
  /** A path on the local filesystem for a file (pg_dump -f), or null when the storage has none. */
  localPath(file: string): string | null;
  /** Publish the archive atomically. */
  commit(): Promise<void>;
  /** Remove what was written. */
  abort(): Promise<void>;
}

/** `acme.20261126T225317123Z`: the tenant's slug, a dot, the creation time in UTC (sortable). */
export function newBackupId(slug: string, at = new Date()): string {
  return `${slug}.${at.toISOString().replace(/[-:.]/g, '')}`;
}

const ID = /^([a-z][a-z0-9-]{0,39})\.(\d{8}T\d{9}Z)(?:-\d+)?$/;

/** The slug of a backup id, or null when it is not one. */
export function slugOfBackupId(id: string): string | null {
  return ID.exec(id)?.[1] ?? null;
}

/**
 * Whether a name is a plain file name of the archive's own folder: not empty, no path separator,
 * not `.` or `..`, no NUL. A manifest is read from storage anyone with write access can edit, so
 * every file name it gives is checked before it is joined to a path (no `../../tmp/x`).
 */
export function isPlainFileName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !/[/\\\0]/.test(name) && name !== '.' && name !== '..';
}

/** The slug of a backup id, or exit 2 saying what an id looks like (every storage's lookups). */
export function archiveSlug(id: string): string {
  const slug = slugOfBackupId(id);
  if (!slug)
    throw new UsageError(
      'BACKUP_NOT_FOUND',
      `"${id}" is not a backup id`,
      'backup ids look like acme.20261126T225317123Z; see tenantctl backup list',
    );
  return slug;
}

/** A file of an archive's own folder; any other name is refused (a forged manifest's `../x`). */
export function assertArchiveFile(id: string, file: string): void {
  if (!isPlainFileName(file))
    throw new UsageError(
      'BAD_ARCHIVE',
      `backup ${id}: "${file}" is not a file of the archive's folder`,
      'use another backup (tenantctl backup list)',
    );
}
