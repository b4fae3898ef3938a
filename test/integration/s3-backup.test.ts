import { loadConfig } from '../../src/config/load.js';
import { describe, expect, inject, it } from 'vitest';
import type { S3Storage } from '../../src/backup/s3-storage.js';
import { storageFor } from '../../src/backup/regions.js';
import { json, migrateEnv, tenantDigests, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed } from '../helpers/seed.js';
import type { TestFleet } from '../helpers/test-fleet.js';
import { S3_ENV, s3ServerForFile, useS3Backups } from '../helpers/s3-server.js';
import { uploadsInProgress } from '../helpers/s3-multipart.js';

/**
 * Backups in S3-compatible object storage (issue 21, item 1), through the built CLI, on the
 * shared fleet (us-east: us1, us2; eu-west: eu1 with residency eu) and one s3rver in this
 * process with a bucket per region. Credentials only from the environment.
 */
const server = s3ServerForFile(['us-east-backups', 'eu-west-backups']);
const K = { TENANTCTL_BACKUP_KEY: Buffer.alloc(32, 5).toString('base64') };

async function s3Env(name: string, encrypt = false): Promise<MigrateEnv> {
  const file = inject('fleetConfigFile');
  const e = await migrateEnv({ config: loadConfig({ file }), configFile: file } as TestFleet, name);
  await useS3Backups(e, server().endpoint, { 'us-east': { encrypt }, 'eu-west': { encrypt } });
  return e;
}

async function backupOf(e: MigrateEnv, slug: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await e.cli(['backup', 'create', slug, '--json'], { env });
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return json(r).results[0].backup;
}

async function keysOf(e: MigrateEnv, region: string): Promise<string[]> {
  const s = storageFor(e.config, region) as S3Storage;
  const { client, s3 } = await s.sdk();
  const r = await client.send(new s3.ListObjectsV2Command({ Bucket: s.config.bucket, Prefix: `${s.config.prefix}/` }));
  return (r.Contents ?? []).map((o) => o.Key!);
}

describe('backup and restore through an S3 bucket', () => {
  for (const model of ['pool', 'schema', 'database'] as const) {
    it(`${model}: plain and encrypted archives stream to the bucket and restore with the same hashes`, async () => {
      const e = await s3Env(`s3${model[0]}`);
      const slug = `s3-${model}`;
      await e.create([{ slug, model, shard: 'us1' }]);
      await seed(e, slug, 200, 'a');
      const before = await tenantDigests(e, slug);
      const plain = await backupOf(e, slug);
      expect((await keysOf(e, 'us-east')).filter((k) => k.startsWith(`tenantctl/${slug}/${plain}/`))).toContain(
        `tenantctl/${slug}/${plain}/manifest.json`,
      );
      await useS3Backups(e, server().endpoint, { 'us-east': { encrypt: true } });
      const enc = await backupOf(e, slug, K);
      const files = (await keysOf(e, 'us-east')).filter((k) => k.startsWith(`tenantctl/${slug}/${enc}/`));
      expect(files.some((k) => k.endsWith('.enc'))).toBe(true);
      expect(files).toContain(`tenantctl/${slug}/${enc}/data-key.json`);
      for (const [id, as] of [
        [plain, `${slug}-p`],
        [enc, `${slug}-e`],
      ]) {
        const v = await e.cli(['backup', 'verify', id, '--json'], { env: K });
        expect(v.code, v.stdout + v.stderr).toBe(0);
        const r = await e.cli(['restore', id, '--as', as, '--json'], { env: K });
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(await tenantDigests(e, as)).toEqual(before);
      }
    });
  }

  it('list and prune on the bucket: the newest kept, the others gone object by object', async () => {
    const e = await s3Env('s3prune');
    await e.create([{ slug: 's3-pr', model: 'pool', shard: 'us1' }]);
    await seed(e, 's3-pr', 5, 'a');
    const ids = [await backupOf(e, 's3-pr'), await backupOf(e, 's3-pr'), await backupOf(e, 's3-pr')];
    const list = await e.cli(['backup', 'list', 's3-pr', '--json']);
    expect(json(list).backups.map((b: any) => b.id)).toEqual(ids);
    expect(json(list).backups[0]).toMatchObject({ region: 'us-east', rows: expect.any(Number) });
    const p = await e.cli(['backup', 'prune', '--keep-last', '1', '--tenant', 's3-pr', '--json']);
    expect(p.code, p.stdout + p.stderr).toBe(0);
    expect(json(await e.cli(['backup', 'list', 's3-pr', '--json'])).backups.map((b: any) => b.id)).toEqual([ids[2]]);
    const left = (await keysOf(e, 'us-east')).filter((k) => k.startsWith('tenantctl/s3-pr/'));
    expect(left.length).toBeGreaterThan(0);
    expect(left.every((k) => k.startsWith(`tenantctl/s3-pr/${ids[2]}/`))).toBe(true);
  });

  it('backup prune aborts the multipart upload a killed backup left (no live holder), and says so', async () => {
    const e = await s3Env('s3mp');
    await e.create([{ slug: 's3-mp', model: 'pool', shard: 'us1' }]);
    // What a SIGKILLed `backup create` leaves: a multipart upload begun, a part up, never completed.
    const s = storageFor(e.config, 'us-east') as S3Storage;
    const { client, s3 } = await s.sdk();
    const id = 's3-mp.20261201T000000000Z';
    const Key = `tenantctl/s3-mp/${id}/001-tasks.copy.br`;
    const { UploadId } = await client.send(new s3.CreateMultipartUploadCommand({ Bucket: s.config.bucket, Key }));
    await client.send(new s3.UploadPartCommand({ Bucket: s.config.bucket, Key, UploadId, PartNumber: 1, Body: Buffer.alloc(6 << 20, 1) }));
    expect(await uploadsInProgress(server().dir, s.config.bucket, 'tenantctl/s3-mp/')).toEqual([Key]);
    const dry = await e.cli(['backup', 'prune', '--keep-last', '1', '--tenant', 's3-mp', '--dry-run', '--json']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(await uploadsInProgress(server().dir, s.config.bucket, 'tenantctl/s3-mp/')).toEqual([Key]);
    const p = await e.cli(['backup', 'prune', '--keep-last', '1', '--tenant', 's3-mp', '--json']);
    expect(p.code, p.stdout + p.stderr).toBe(0);
    expect(p.stdout).toContain(id);
    expect(p.stdout).toContain('left by a killed backup');
    expect(await uploadsInProgress(server().dir, s.config.bucket, 'tenantctl/s3-mp/')).toEqual([]);
    expect(json(await e.cli(['backup', 'list', 's3-mp', '--json'])).backups).toEqual([]);
  });

  it("residency: an archive copied into another region's bucket is refused; two regions naming one bucket is a config error", async () => {
    const e = await s3Env('s3res');
    await e.create([{ slug: 's3-eu', model: 'pool', shard: 'eu1' }]);
    await seed(e, 's3-eu', 10, 'a');
    const id = await backupOf(e, 's3-eu');
    expect((await keysOf(e, 'eu-west')).some((k) => k.includes(id))).toBe(true);
    expect((await keysOf(e, 'us-east')).some((k) => k.includes(id))).toBe(false);
    // Someone copies the archive into us-east's bucket and removes it from eu-west's.
    const eu = storageFor(e.config, 'eu-west') as S3Storage;
    const us = storageFor(e.config, 'us-east') as S3Storage;
    const { client, s3 } = await eu.sdk();
    for (const key of (await keysOf(e, 'eu-west')).filter((k) => k.includes(id))) {
      await client.send(new s3.CopyObjectCommand({ Bucket: us.config.bucket, Key: key, CopySource: `${eu.config.bucket}/${key}` }));
    }
    await eu.remove(id);
    const r = await e.cli(['restore', id, '--as', 's3-eu2', '--shard', 'eu1', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(json(r).error.code).toBe('RESIDENCY');
    expect(json(r).error.message).toMatch(
      /is of region eu-west but lies in region us-east's backup storage \(s3:\/\/us-east-backups\/tenantctl/,
    );
    expect(json(await e.cli(['tenant', 'show', 's3-eu2', '--json'])).error.code).toBe('TENANT_NOT_FOUND');

    const { readFile, writeFile } = await import('node:fs/promises');
    const text = await readFile(e.configFile, 'utf8');
    await writeFile(e.configFile, text.replace('bucket: eu-west-backups', 'bucket: us-east-backups'));
    const bad = await e.cli(['backup', 'list', '--json']);
    expect(bad.code).toBe(2);
    expect(json(bad).error.message).toMatch(/regions\.eu-west\.backup\.s3\.bucket: bucket "us-east-backups" is also region us-east's/);
    await writeFile(e.configFile, text);
  });

  it('a wrong credential, no credential, a missing bucket and an endpoint that does not answer: clear errors, nothing written, no secret printed', async () => {
    const e = await s3Env('s3cred');
    await e.create([{ slug: 's3-cred', model: 'schema', shard: 'us1' }]);
    const secret = 'tOtAlLy-WrOnG-sEcReT-9';
    const wrong = await e.cli(['backup', 'create', 's3-cred', '--json'], {
      env: { AWS_ACCESS_KEY_ID: 'AKIAWRONG', AWS_SECRET_ACCESS_KEY: secret },
    });
    expect(wrong.code, wrong.stdout + wrong.stderr).toBe(2);
    expect(json(wrong).results[0].error).toMatchObject({
      code: 'BACKUP_STORAGE',
      message: expect.stringMatching(/credential was refused for bucket "us-east-backups"/),
    });
    expect(wrong.stdout + wrong.stderr).not.toContain(secret);
    const listed = await e.cli(['backup', 'list'], { env: { AWS_ACCESS_KEY_ID: 'AKIAWRONG', AWS_SECRET_ACCESS_KEY: secret } });
    expect(listed.code).toBe(2);
    expect(listed.stderr).toMatch(/credential was refused for bucket "us-east-backups"/);
    expect(listed.stderr).toMatch(/AWS_ACCESS_KEY_ID/);
    expect(listed.stdout + listed.stderr).not.toContain(secret);
    const none = await e.cli(['backup', 'list', '--json'], {
      env: {
        AWS_ACCESS_KEY_ID: '',
        AWS_SECRET_ACCESS_KEY: '',
        AWS_PROFILE: 'tenantctl-test-none',
        AWS_CONFIG_FILE: '/nonexistent',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    });
    expect(none.code, none.stdout + none.stderr).toBe(2);
    expect(json(none).error.code).toBe('BACKUP_STORAGE');

    const { readFile, writeFile } = await import('node:fs/promises');
    const text = await readFile(e.configFile, 'utf8');
    await writeFile(e.configFile, text.replace('bucket: us-east-backups', 'bucket: no-such-bucket'));
    const missing = await e.cli(['backup', 'create', 's3-cred', '--json']);
    expect(missing.code).toBe(2);
    expect(json(missing).results[0].error.message).toMatch(/bucket "no-such-bucket" does not exist/);
    expect(missing.stdout + missing.stderr).toContain('regions.us-east.backup.s3.bucket');
    await writeFile(e.configFile, text.replace(server().endpoint, 'http://127.0.0.1:9'));
    const down = await e.cli(['backup', 'create', 's3-cred', '--json']);
    expect(down.code, down.stdout + down.stderr).toBe(1);
    expect(down.stdout + down.stderr).toMatch(/did not answer/);
    await writeFile(e.configFile, text);
    expect(json(await e.cli(['backup', 'list', 's3-cred', '--json'])).backups).toEqual([]);
    expect((await keysOf(e, 'us-east')).filter((k) => k.startsWith('tenantctl/s3-cred/'))).toEqual([]);
    expect(S3_ENV.AWS_SECRET_ACCESS_KEY).toBe('S3RVER');
  });
});
