import { PassThrough, Readable, Writable } from 'node:stream';
import type { Upload } from '@aws-sdk/lib-storage';
import { UsageError } from '../errors.js';
import { isNotFound, loadS3, s3Error, type S3Sdk } from './s3-client.js';
import type { S3BackupConfig } from '../config/s3-config.js';
import { archiveSlug, assertArchiveFile, slugOfBackupId, type ArchiveWriter, type BackupStorage } from './storage.js';

/**
 * The archive's last object: an archive is complete, and listed, exactly when it is there. On a
 * filesystem a folder rename publishes an archive at once; S3 has no rename, so the data objects
 * are uploaded first and this one last (`commit`), and `list` lists by it.
 */
export const PUBLISHED_BY = 'manifest.json';

/** Parts of a multipart upload: 8 MiB, two in flight, so memory stays flat whatever the tenant's size. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE = 2;

/**
 * Archives in an S3-compatible bucket: `<prefix>/<slug>/<id>/<file>`. Files stream up through
 * multipart uploads (@aws-sdk/lib-storage) and down through GetObject; nothing is copied to the
 * local disk. An archive without its manifest is unpublished: a backup in progress, or what a
 * killed or failed one left (`partials`).
 */
export class S3Storage implements BackupStorage {
  readonly location: string;
  private readonly base: string;
  private loaded?: Promise<S3Sdk>;

  constructor(
    readonly config: S3BackupConfig,
    /** The region whose `backup.s3` this is, for the config path errors name. */
    readonly region?: string,
  ) {
    this.base = config.prefix ? `${config.prefix}/` : '';
    const path = config.prefix ? `s3://${config.bucket}/${config.prefix}` : `s3://${config.bucket}`;
    this.location = config.endpoint ? `${path} at ${config.endpoint}` : path;
  }

  /** @internal the SDK and this bucket's client, loaded once. */
  sdk(): Promise<S3Sdk> {
    this.loaded ??= loadS3(this.config);
    return this.loaded;
  }

  /** @internal what the store said, as a tenantctl error naming the bucket (src/backup/s3-client.ts). */
  fail(err: unknown, doing: string): Error {
    return s3Error(err, { bucket: this.config.bucket, location: this.location, doing, region: this.region });
  }

  private prefixOf(id: string): string {
    const slug = archiveSlug(id);
    return `${this.base}${slug}/${id}/`;
  }

  private key(id: string, file: string): string {
    assertArchiveFile(id, file);
    return this.prefixOf(id) + file;
  }

  async begin(id: string): Promise<ArchiveWriter> {
    const prefix = this.prefixOf(id);
    // A leftover of an earlier attempt under the same id would be published with this one.
    await this.deleteAll(await this.keysUnder(prefix), `cleaning ${id} in`);
    return new S3ArchiveWriter(this, id, await this.sdk());
  }

  /** @internal the writer's access to the bucket. */
  upload(sdk: S3Sdk, id: string, file: string, body: Readable | string): Upload {
    return new sdk.Upload({
      client: sdk.client,
      params: { Bucket: this.config.bucket, Key: this.key(id, file), Body: body },
      partSize: PART_SIZE,
      queueSize: QUEUE,
      leavePartsOnError: false,
    });
  }

  /** @internal */
  async putText(id: string, file: string, text: string, doing: string): Promise<void> {
    try {
      const { client, s3 } = await this.sdk();
      await client.send(new s3.PutObjectCommand({ Bucket: this.config.bucket, Key: this.key(id, file), Body: text }));
    } catch (err) {
      throw this.fail(err, doing);
    }
  }

  /**
   * @internal remove every object of an archive, the manifest first (so it is unlisted at once),
   * and abort its multipart uploads still in progress (a killed writer's: S3 keeps their parts,
   * unlisted and billed, until they are aborted).
   */
  async removeArchive(id: string): Promise<void> {
    const keys = await this.keysUnder(this.prefixOf(id));
    const manifest = this.prefixOf(id) + PUBLISHED_BY;
    if (keys.includes(manifest)) await this.deleteAll([manifest], `removing ${id} from`);
    await this.abortUploads(await this.uploadsUnder(this.prefixOf(id)), `removing ${id} from`);
    await this.deleteAll(
      keys.filter((k) => k !== manifest),
      `removing ${id} from`,
    );
  }

  /**
   * id → its files, for every archive (published or not) of one tenant or of all; `uploads`: also
   * the files of multipart uploads in progress (an archive a killed backup left may have nothing
   * else).
   */
  private async scan(slug?: string, uploads = false): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    const under = slug ? `${this.base}${slug}/` : this.base;
    const keys = await this.keysUnder(under);
    if (uploads) for (const u of await this.uploadsUnder(under)) keys.push(u.Key);
    for (const key of keys) {
      const parts = key.slice(this.base.length).split('/');
      if (parts.length !== 3) continue;
      const [s, id, file] = parts;
      if (slugOfBackupId(id) !== s || (slug && s !== slug)) continue;
      if (!out.has(id)) out.set(id, new Set());
      out.get(id)!.add(file);
    }
    return out;
  }

  /**
   * Multipart uploads in progress under a prefix. A server without the call (s3rver answers
   * NotImplemented) has none to show: treated as none.
   */
  private async uploadsUnder(prefix: string): Promise<{ Key: string; UploadId: string }[]> {
    const out: { Key: string; UploadId: string }[] = [];
    let marker: { KeyMarker?: string; UploadIdMarker?: string } = {};
    try {
      const { client, s3 } = await this.sdk();
      for (;;) {
        const r = await client.send(new s3.ListMultipartUploadsCommand({ Bucket: this.config.bucket, Prefix: prefix, ...marker }));
        for (const u of r.Uploads ?? []) if (u.Key && u.UploadId) out.push({ Key: u.Key, UploadId: u.UploadId });
        if (!r.IsTruncated) break;
        marker = { KeyMarker: r.NextKeyMarker, UploadIdMarker: r.NextUploadIdMarker };
      }
    } catch (err) {
      if ((err as { name?: string }).name === 'NotImplemented') return out;
      throw this.fail(err, 'listing the uploads in progress in');
    }
    return out;
  }

  private async abortUploads(uploads: { Key: string; UploadId: string }[], doing: string): Promise<void> {
    for (const u of uploads) {
      try {
        const { client, s3 } = await this.sdk();
        await client.send(new s3.AbortMultipartUploadCommand({ Bucket: this.config.bucket, ...u }));
      } catch (err) {
        // Gone already (its writer aborted it, or it completed): nothing left to abort.
        if ((err as { name?: string }).name !== 'NoSuchUpload') throw this.fail(err, doing);
      }
    }
  }

  private async keysUnder(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    try {
      const { client, s3 } = await this.sdk();
      do {
        const r = await client.send(new s3.ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken: token }));
        for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.fail(err, 'listing');
    }
    return keys;
  }

  private async deleteAll(keys: string[], doing: string): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      try {
        const { client, s3 } = await this.sdk();
        const r = await client.send(
          new s3.DeleteObjectsCommand({
            Bucket: this.config.bucket,
            Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
          }),
        );
        if (r.Errors?.length) throw Object.assign(new Error(r.Errors[0].Message ?? 'delete failed'), { name: r.Errors[0].Code });
      } catch (err) {
        throw this.fail(err, doing);
      }
    }
  }

  async list(slug?: string): Promise<string[]> {
    const out: string[] = [];
    for (const [id, files] of await this.scan(slug)) if (files.has(PUBLISHED_BY)) out.push(id);
    return out.sort();
  }

  async has(id: string): Promise<boolean> {
    return (await this.size(id, PUBLISHED_BY)) !== null;
  }

  read(id: string, file: string): Readable {
    const key = this.key(id, file);
    const self = this;
    // Lazily: the GetObject starts when the stream is first read, and its body streams through.
    return Readable.from(
      (async function* () {
        let body: AsyncIterable<Uint8Array>;
        try {
          const { client, s3 } = await self.sdk();
          const r = await client.send(new s3.GetObjectCommand({ Bucket: self.config.bucket, Key: key }));
          body = r.Body as AsyncIterable<Uint8Array>;
        } catch (err) {
          if (isNotFound(err)) throw new UsageError('BAD_ARCHIVE', `backup ${id}: ${file} is missing from ${self.location}`);
          throw self.fail(err, `reading ${id}/${file} from`);
        }
        try {
          for await (const chunk of body) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        } catch (err) {
          throw self.fail(err, `reading ${id}/${file} from`);
        }
      })(),
      { objectMode: false },
    );
  }

  async readText(id: string, file: string): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of this.read(id, file)) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async size(id: string, file: string): Promise<number | null> {
    try {
      const { client, s3 } = await this.sdk();
      const r = await client.send(new s3.HeadObjectCommand({ Bucket: this.config.bucket, Key: this.key(id, file) }));
      return r.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.fail(err, `reading ${id}/${file} from`);
    }
  }

  async replaceText(id: string, file: string, text: string): Promise<void> {
    // One PUT replaces an object whole: a reader sees the old text or the new, never half.
    await this.putText(id, file, text, `rewriting ${id}/${file} in`);
  }

  async removeFile(id: string, file: string): Promise<void> {
    await this.deleteAll([this.key(id, file)], `removing ${id}/${file} from`);
  }

  async remove(id: string): Promise<void> {
    await this.removeArchive(id);
  }

  async partials(slug?: string): Promise<string[]> {
    const out: string[] = [];
    for (const [id, files] of await this.scan(slug, true)) if (!files.has(PUBLISHED_BY)) out.push(`${slugOfBackupId(id)}/${id}`);
    return out.sort();
  }

  async removePartials(slug: string, only?: string[]): Promise<string[]> {
    const found = (await this.partials(slug)).filter((p) => !only || only.includes(p));
    for (const p of found) await this.removeArchive(p.slice(p.indexOf('/') + 1));
    return found;
  }
}

/**
 * One archive being written: every data file its own (multipart) upload; the manifest held back
 * until `commit`, which waits for every upload to have finished and then puts it.
 */
class S3ArchiveWriter implements ArchiveWriter {
  private readonly uploads: { body: PassThrough; done: Promise<unknown>; finished: boolean }[] = [];
  private manifest: string | null = null;

  constructor(
    private readonly storage: S3Storage,
    private readonly id: string,
    private readonly sdk: S3Sdk,
  ) {}

  write(file: string): Writable {
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    const upload = this.storage.upload(this.sdk, this.id, file, body);
    const u = { body, done: upload.done(), finished: false };
    this.uploads.push(u);
    const doing = `uploading ${this.id}/${file} to`;
    const sink = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _e, cb) {
        if (body.write(chunk)) cb();
        else body.once('drain', () => cb());
      },
      // The stream ends when the object is stored, not when its last bytes are queued.
      final: (cb) => {
        body.end();
        u.done.then(
          () => {
            u.finished = true;
            cb();
          },
          (err) => cb(this.storage.fail(err, doing)),
        );
      },
      destroy(err, cb) {
        if (!u.finished) cutUpload(u);
        cb(err);
      },
    });
    // A refused or cut upload fails the stream feeding it at once (no writer waits for a drain forever).
    u.done.catch((err) => sink.destroy(this.storage.fail(err, doing)));
    return sink;
  }

  async writeText(file: string, text: string): Promise<void> {
    if (file === PUBLISHED_BY) {
      this.manifest = text;
      return;
    }
    await this.storage.putText(this.id, file, text, `uploading ${this.id}/${file} to`);
  }

  localPath(): null {
    return null;
  }

  async commit(): Promise<void> {
    for (const u of this.uploads) await u.done.catch((err) => Promise.reject(this.storage.fail(err, `uploading ${this.id} to`)));
    if (this.manifest === null) throw new Error(`backup ${this.id}: no ${PUBLISHED_BY} to publish`);
    await this.storage.putText(this.id, PUBLISHED_BY, this.manifest, `publishing ${this.id} in`);
  }

  async abort(): Promise<void> {
    for (const u of this.uploads) if (!u.finished) cutUpload(u);
    // Each upload ends once its parts in flight have: the SDK then aborts it on the server.
    // Bounded (a part stuck on a store that stopped answering); whatever is left after that,
    // removeArchive aborts, and the sweep or `backup prune` later.
    await Promise.race([Promise.allSettled(this.uploads.map((u) => u.done)), delay(ABORT_WAIT_MS)]);
    await this.storage.removeArchive(this.id);
  }
}

const ABORT_WAIT_MS = 15_000;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * End an upload by failing its body: the SDK's uploader stops reading, waits for its parts in
 * flight and then sends AbortMultipartUpload, and only then does its `done()` reject. (Its own
 * `abort()` rejects `done()` at once and aborts on the server later, if the process still runs.)
 */
function cutUpload(u: { body: PassThrough; done: Promise<unknown> }): void {
  u.done.catch(() => undefined);
  if (!u.body.destroyed) u.body.destroy(new Error('the archive was abandoned'));
}
