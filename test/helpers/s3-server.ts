import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { afterAll, beforeAll } from 'vitest';
import { multipartMiddleware } from './s3-multipart.js';

/** s3rver's fixed credential: the test process and the CLIs it runs get it through the environment. */
export const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

export interface S3Server {
  endpoint: string;
  /** Where it keeps the objects (to restart it on the same data). */
  dir: string;
  close(): Promise<void>;
}

/** An S3-compatible server in this process (s3rver), on a free port, with these buckets. */
export async function startS3Server(buckets: string[], at?: { dir: string; port: number }): Promise<S3Server> {
  const dir = at?.dir ?? (await mkdtemp(join(tmpdir(), 'tenantctl-s3-')));
  const server = new S3rver({
    port: at?.port ?? 0,
    address: '127.0.0.1',
    silent: true,
    directory: dir,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  // First, before s3rver's router: the multipart calls it lacks (./s3-multipart.ts).
  (server as unknown as { middleware: unknown[] }).middleware.unshift(multipartMiddleware(dir));
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, dir, close: () => server.close() };
}

/**
 * One S3 server per test file, shared by its tests (starts in well under a second): the
 * credential is put in this process's environment, where the SDK's default chain finds it.
 *
 * @example
 *   const s3 = s3ServerForFile(['us-east-backups']);
 *   it('…', () => { s3().endpoint … });
 */
export function s3ServerForFile(buckets: string[]): () => S3Server {
  let server: S3Server;
  beforeAll(async () => {
    Object.assign(process.env, S3_ENV);
    server = await startS3Server(buckets);
  });
  afterAll(async () => {
    await server?.close();
    await rm(server.dir, { recursive: true, force: true });
  });
  return () => server;
}

/**
 * Put each named region's backups in a bucket of this server (`<region>-backups`, prefix
 * `tenantctl`), keeping `encrypt` and `compression` as they were, and reload the env's config.
 */
export async function useS3Backups(
  e: { configFile: string; config: unknown },
  endpoint: string,
  regions: Record<string, { encrypt?: boolean }>,
): Promise<void> {
  const { readFile, writeFile } = await import('node:fs/promises');
  const { parseDocument } = await import('yaml');
  const { loadConfig } = await import('../../src/config/load.js');
  const doc = parseDocument(await readFile(e.configFile, 'utf8'));
  for (const [region, o] of Object.entries(regions)) {
    doc.setIn(
      ['regions', region, 'backup'],
      doc.createNode({
        s3: { bucket: `${region}-backups`, prefix: 'tenantctl', endpoint, region: 'us-east-1', forcePathStyle: true },
        encrypt: o.encrypt ?? false,
      }),
    );
  }
  await writeFile(e.configFile, doc.toString());
  e.config = loadConfig({ file: e.configFile });
}
