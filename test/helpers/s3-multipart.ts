import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The two S3 calls s3rver lacks that a sweep of killed backups needs: ListMultipartUploads
 * (`GET /bucket?uploads&prefix=…`) and AbortMultipartUpload (`DELETE /bucket/key?uploadId=…`).
 * s3rver answers the first NotImplemented and the second 405, yet keeps each upload in progress
 * as a folder `<dir>/<bucket>/._S3rver_uploads/<uploadId>` holding its `key` and its parts; these
 * read and remove those folders, so the tests see what a real S3 would keep (and bill) after a
 * killed upload. Path-style requests only (what the tests configure); they run before s3rver's
 * own router, so without its signature check (no test of these is about credentials).
 */
interface Ctx {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  type: string;
}

const uploadsDir = (dir: string, bucket: string) => join(dir, bucket, '._S3rver_uploads');
const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

async function listUploads(dir: string, bucket: string, prefix: string): Promise<{ key: string; id: string; at: Date }[]> {
  const root = uploadsDir(dir, bucket);
  const ids = await readdir(root).catch(() => [] as string[]);
  const out: { key: string; id: string; at: Date }[] = [];
  for (const id of ids) {
    const key = await readFile(join(root, id, 'key'), 'utf8').catch(() => null);
    if (key?.startsWith(prefix)) out.push({ key, id, at: (await stat(join(root, id))).mtime });
  }
  return out.sort((a, b) => a.key.localeCompare(b.key) || a.id.localeCompare(b.id));
}

export function multipartMiddleware(dir: string): (ctx: Ctx, next: () => Promise<void>) => Promise<void> {
  return async (ctx, next) => {
    const [bucket, ...rest] = ctx.path.slice(1).split('/');
    // The SDK asks for a bucket's uploads at `/bucket/`.
    if (ctx.method === 'GET' && rest.join('') === '' && bucket && ctx.query.uploads !== undefined) {
      const prefix = typeof ctx.query.prefix === 'string' ? ctx.query.prefix : '';
      const uploads = await listUploads(dir, bucket, prefix);
      ctx.type = 'application/xml';
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xml(bucket)}</Bucket><Prefix>${xml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads
        .map(
          (u) =>
            `<Upload><Key>${xml(u.key)}</Key><UploadId>${xml(u.id)}</UploadId><Initiated>${u.at.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
        )
        .join('')}</ListMultipartUploadsResult>`;
      return;
    }
    const uploadId = ctx.query.uploadId;
    if (ctx.method === 'DELETE' && rest.length > 0 && typeof uploadId === 'string' && /^[\w-]+$/.test(uploadId)) {
      const folder = join(uploadsDir(dir, bucket), uploadId);
      const key = await readFile(join(folder, 'key'), 'utf8').catch(() => null);
      if (key !== decodeURIComponent(rest.join('/'))) {
        ctx.status = 404;
        ctx.type = 'application/xml';
        ctx.body =
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>';
        return;
      }
      await rm(folder, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    await next();
  };
}

/** The uploads in progress in a bucket of the server kept in `dir` (keys), for assertions. */
export async function uploadsInProgress(dir: string, bucket: string, prefix = ''): Promise<string[]> {
  return (await listUploads(dir, bucket, prefix)).map((u) => u.key);
}
