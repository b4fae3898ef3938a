import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { S3Storage } from '../../src/backup/s3-storage.js';
import { s3BackupSchema } from '../../src/config/s3-config.js';
import { TenantctlError, UsageError } from '../../src/errors.js';
import { S3_ENV, s3ServerForFile, startS3Server } from '../helpers/s3-server.js';
import { uploadsInProgress } from '../helpers/s3-multipart.js';

/**
 * The S3 storage (issue 21, item 1) against a real S3-compatible server in this process
 * (s3rver): multipart streaming uploads, publishing by the manifest, and what a cut upload, a
 * wrong credential and a missing bucket leave and say.
 */
const server = s3ServerForFile(['st-bucket']);

function storage(prefix: string, bucket = 'st-bucket', endpoint = server().endpoint): S3Storage {
  return new S3Storage(s3BackupSchema.parse({ bucket, prefix, endpoint, region: 'us-east-1', forcePathStyle: true }));
}

/** `mib` MiB of incompressible-looking bytes, then (optionally) an error. */
function source(mib: number, failAfter?: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent === mib) {
        if (failAfter) this.destroy(failAfter);
        else this.push(null);
        return;
      }
      sent++;
      this.push(Buffer.alloc(1024 * 1024, sent));
    },
  });
}

async function objects(s: S3Storage): Promise<string[]> {
  const { client, s3 } = await s.sdk();
  const r = await client.send(new s3.ListObjectsV2Command({ Bucket: s.config.bucket, Prefix: s.config.prefix }));
  return (r.Contents ?? []).map((o) => o.Key!);
}

describe('S3 storage', () => {
  it('a 20 MiB file streams up in parts and back; the archive is listed only once its manifest is up; remove leaves nothing', async () => {
    const s = storage('rt');
    const id = 'acme.20261201T000000000Z';
    const w = await s.begin(id);
    await pipeline(source(20), w.write('001-tasks.copy'));
    await w.writeText('manifest.json', '{"m":1}');
    expect(await s.list()).toEqual([]);
    expect(await s.partials()).toEqual([`acme/${id}`]);
    await w.commit();
    expect(await s.list()).toEqual([id]);
    expect(await s.list('acme')).toEqual([id]);
    expect(await s.list('acm')).toEqual([]);
    expect(await s.partials()).toEqual([]);
    expect(await s.size(id, '001-tasks.copy')).toBe(20 * 1024 * 1024);
    expect(await s.size(id, 'nope')).toBeNull();
    let n = 0;
    for await (const c of s.read(id, '001-tasks.copy')) n += (c as Buffer).length;
    expect(n).toBe(20 * 1024 * 1024);
    expect(await s.readText(id, 'manifest.json')).toBe('{"m":1}');
    await s.replaceText(id, 'manifest.json', '{"m":2}');
    expect(await s.readText(id, 'manifest.json')).toBe('{"m":2}');
    await s.remove(id);
    expect(await s.list()).toEqual([]);
    expect(await objects(s)).toEqual([]);
  });

  it('a source that fails half-way (after two parts): the stream fails with its error, abort leaves nothing, nothing listed', async () => {
    const s = storage('cut');
    const id = 'cut.20261201T000000000Z';
    const w = await s.begin(id);
    await w.writeText('small.txt', 'a finished small file');
    await pipeline(source(3), w.write('001-a.copy'));
    const err = await pipeline(source(18, new Error('COPY cut off')), w.write('002-b.copy')).catch((e) => e);
    expect(err.message).toBe('COPY cut off');
    expect(await objects(s)).not.toEqual([]);
    await w.abort();
    expect(await s.list()).toEqual([]);
    expect(await s.partials()).toEqual([]);
    expect(await objects(s)).toEqual([]);
  });

  it('a writer abandoned mid-upload: abort() returns only once the store has no upload of it in progress', async () => {
    const s = storage('ab');
    const id = 'ab.20261201T000000000Z';
    const w = await s.begin(id);
    let sent = 0;
    let third!: () => void;
    const twoPartsIn = new Promise<void>((r) => (third = r));
    // Slowly: parts still in flight when the writer is abandoned.
    const body = new Readable({
      read() {
        if (++sent === 20) third();
        setTimeout(() => this.push(Buffer.alloc(1024 * 1024, sent)), 10);
      },
    });
    const done = pipeline(body, w.write('001-a.copy')).catch((e) => e);
    await twoPartsIn;
    await w.abort();
    expect(await uploadsInProgress(server().dir, 'st-bucket', 'ab/')).toEqual([]);
    expect(await objects(s)).toEqual([]);
    expect(await done).toBeInstanceOf(Error);
  });

  it('an upload a killed writer left (a part up, never completed) is a partial; removePartials aborts it', async () => {
    const s = storage('mp');
    const { client, s3 } = await s.sdk();
    const id = 'mp.20261201T000000000Z';
    const Key = `mp/mp/${id}/001-a.copy`;
    const { UploadId } = await client.send(new s3.CreateMultipartUploadCommand({ Bucket: 'st-bucket', Key }));
    await client.send(new s3.UploadPartCommand({ Bucket: 'st-bucket', Key, UploadId, PartNumber: 1, Body: Buffer.alloc(6 << 20, 2) }));
    expect(await s.list()).toEqual([]);
    expect(await s.partials()).toEqual([`mp/${id}`]);
    expect(await s.removePartials('mp')).toEqual([`mp/${id}`]);
    expect(await uploadsInProgress(server().dir, 'st-bucket', 'mp/')).toEqual([]);
    expect(await s.partials()).toEqual([]);
  });

  it('the server going away mid-upload: a clear error naming the store; after it is back nothing is listed and the leftovers are removable', async () => {
    const own = await startS3Server(['kill-bucket']);
    const port = Number(new URL(own.endpoint).port);
    try {
      const s = storage('k', 'kill-bucket', own.endpoint);
      const id = 'kill.20261201T000000000Z';
      const w = await s.begin(id);
      await w.writeText('small.txt', 'x');
      await w.writeText('manifest.json', '{}');
      let sent = 0;
      const body = new Readable({
        read() {
          sent++;
          if (sent === 12) void own.close();
          if (sent > 40) this.push(null);
          else setTimeout(() => this.push(Buffer.alloc(1024 * 1024, sent)), 5);
        },
      });
      const err = await pipeline(body, w.write('001-a.copy')).catch((e) => e);
      expect(err).toBeInstanceOf(TenantctlError);
      expect(err.code).toBe('BACKUP_STORAGE_DOWN');
      expect(err.message).toContain('s3://kill-bucket/k');
      await expect(w.commit()).rejects.toThrow(/kill-bucket/);
      const again = await startS3Server(['kill-bucket'], { dir: own.dir, port });
      try {
        expect(await s.list()).toEqual([]);
        expect(await s.removePartials('kill')).toEqual([`kill/${id}`]);
        expect(await objects(s)).toEqual([]);
      } finally {
        await again.close();
      }
    } finally {
      await own.close().catch(() => undefined);
      await rm(own.dir, { recursive: true, force: true });
    }
  });

  it('a wrong credential and a missing bucket: exit-2 errors naming the bucket and the fix, never the secret', async () => {
    const secret = 'wRoNg-SeCrEt-123456';
    const saved = { ...process.env };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIAWRONGKEY', AWS_SECRET_ACCESS_KEY: secret });
    try {
      const err = await storage('w')
        .list()
        .catch((e) => e);
      expect(err).toBeInstanceOf(UsageError);
      expect(err.code).toBe('BACKUP_STORAGE');
      expect(err.message).toMatch(/credential was refused for bucket "st-bucket"/);
      expect(err.hint).toMatch(/AWS_ACCESS_KEY_ID/);
      expect(`${err.message} ${err.hint}`).not.toContain(secret);
    } finally {
      Object.assign(process.env, S3_ENV, {
        AWS_ACCESS_KEY_ID: saved.AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: saved.AWS_SECRET_ACCESS_KEY,
      });
    }
    const missing = await storage('m', 'no-such-bucket')
      .list()
      .catch((e) => e);
    expect(missing.code).toBe('BACKUP_STORAGE');
    expect(missing.message).toMatch(/bucket "no-such-bucket" does not exist/);
  });
});
