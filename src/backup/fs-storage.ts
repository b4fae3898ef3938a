import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { UsageError } from '../errors.js';
import { archiveSlug, assertArchiveFile, slugOfBackupId, type ArchiveWriter, type BackupStorage } from './storage.js';

/**
 * Archives as folders on any mounted filesystem: `<dir>/<slug>/<id>/`. Written under
 * `<dir>/<slug>/.<id>.partial/` and renamed when complete (a rename within one filesystem is
 * atomic), so `list` never sees a half-written archive.
 */
export class FsStorage implements BackupStorage {
  /** `setting`: the config key that names the folder (`regions.<r>.backup.dir`), for errors. */
  constructor(
    readonly location: string,
    readonly setting = 'backup.dir',
  ) {}

  /** A file where a folder must be (the setting itself, or a tenant's folder in it): a config error, not an internal one. */
  private notAFolder(err: unknown): never {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST')
      throw new UsageError(
        'CONFIG_INVALID',
        `${this.setting} ${this.location}: ${(err as NodeJS.ErrnoException).path ?? this.location} is a file, not a folder`,
        `point ${this.setting} at a folder (or move that file away)`,
      );
    throw err;
  }

  private names(dir: string): Promise<string[]> {
    return names(dir).catch((err) => this.notAFolder(err));
  }

  private dir(id: string): string {
    const slug = archiveSlug(id);
    return join(this.location, slug, id);
  }

  async begin(id: string): Promise<ArchiveWriter> {
    const final = this.dir(id);
    const temp = join(final, '..', `.${id}.partial`);
    await rm(temp, { recursive: true, force: true });
    await mkdir(temp, { recursive: true, mode: 0o700 }).catch((err) => this.notAFolder(err));
    return {
      write: (file: string): Writable => createWriteStream(join(temp, file), { mode: 0o600 }),
      writeText: (file: string, text: string) => writeFile(join(temp, file), text, { mode: 0o600 }),
      localPath: (file: string) => join(temp, file),
      commit: () => rename(temp, final),
      abort: () => rm(temp, { recursive: true, force: true }),
    };
  }

  async list(slug?: string): Promise<string[]> {
    const slugs = slug ? [slug] : await this.names(this.location);
    const out: string[] = [];
    for (const s of slugs) {
      for (const id of await this.names(join(this.location, s))) {
        if (!id.startsWith('.') && slugOfBackupId(id) === s) out.push(id);
      }
    }
    return out.sort();
  }

  async has(id: string): Promise<boolean> {
    return (await stat(this.dir(id)).catch(() => null))?.isDirectory() ?? false;
  }

  /** A file of the archive's own folder; any other name is refused (a forged manifest's `../x`). */
  private file(id: string, file: string): string {
    assertArchiveFile(id, file);
    return join(this.dir(id), file);
  }

  read(id: string, file: string): Readable {
    return createReadStream(this.file(id, file));
  }

  readText(id: string, file: string): Promise<string> {
    return readFile(this.file(id, file), 'utf8');
  }

  async size(id: string, file: string): Promise<number | null> {
    return (await stat(this.file(id, file)).catch(() => null))?.size ?? null;
  }

  async replaceText(id: string, file: string, text: string): Promise<void> {
    // Written beside it, then renamed over it: a reader sees the old text or the new.
    const path = this.file(id, file);
    const temp = join(this.dir(id), `.${file}.replacing`);
    await writeFile(temp, text, { mode: 0o600 });
    await rename(temp, path);
  }

  async removeFile(id: string, file: string): Promise<void> {
    await rm(this.file(id, file), { force: true });
  }

  async partials(slug?: string): Promise<string[]> {
    const out: string[] = [];
    for (const s of slug ? [slug] : await this.names(this.location))
      for (const n of await this.names(join(this.location, s))) if (isUnpublished(n, s)) out.push(join(s, n));
    return out.sort();
  }

  async removePartials(slug: string, only?: string[]): Promise<string[]> {
    const found = (await this.partials(slug)).filter((p) => !only || only.includes(p));
    for (const p of found) await rm(join(this.location, p), { recursive: true, force: true });
    return found;
  }

  async remove(id: string): Promise<void> {
    // Renamed away first, so a crash half-way through never leaves a listed, partial archive.
    const dir = this.dir(id);
    const doomed = join(dir, '..', `.${id}.deleting`);
    await rename(dir, doomed);
    await rm(doomed, { recursive: true, force: true });
  }
}

/** A killed backup's `.<id>.partial` folder, or a killed remove's `.<id>.deleting`. */
function isUnpublished(name: string, slug: string): boolean {
  return name.startsWith(`.${slug}.`) && (name.endsWith('.partial') || name.endsWith('.deleting'));
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
