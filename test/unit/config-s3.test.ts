import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { TenantctlError } from '../../src/errors.js';

/** `regions.<r>.backup.s3` (issue 21, item 1): validated at load, every problem at once, no credentials. */
function config(usBackup: string, euBackup = '{ dir: /b/eu }'): string {
  return `
catalog:
  shard: us1
regions:
  us-east:
    backup: ${usBackup}
    shards:
      us1:
        url: postgres://postgres:pw@127.0.0.1:55431/postgres
  eu-west:
    backup: ${euBackup}
    shards:
      eu1:
        url: postgres://postgres:pw@127.0.0.1:55433/postgres
`;
}

function problems(text: string): string {
  try {
    parseConfig(text, '/repo/tenants.config.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(TenantctlError);
    expect((err as TenantctlError).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

describe('backup.s3 in the config', () => {
  it('a bucket with a prefix, an endpoint and path style loads (slashes of the prefix trimmed)', () => {
    const c = parseConfig(
      config(
        '{ s3: { bucket: acme-backups, prefix: /tenantctl/us/, endpoint: "http://minio:9000", region: us-east-1, forcePathStyle: true } }',
      ),
      '/repo/tenants.config.yaml',
      {},
    );
    expect(c.regions['us-east'].backup?.s3).toEqual({
      bucket: 'acme-backups',
      prefix: 'tenantctl/us',
      endpoint: 'http://minio:9000',
      region: 'us-east-1',
      forcePathStyle: true,
    });
  });

  it('every problem at once: bad bucket, endpoint with a password, a credential key (value never shown), a missing region', () => {
    const msg = problems(
      config('{ s3: { bucket: Bad_Bucket, endpoint: "http://u:pw-secret@minio:9000", secretAccessKey: sEcReT-vAlUe-1 } }'),
    );
    expect(msg).toMatch(/regions\.us-east\.backup\.s3\.bucket: must be an S3 bucket name/);
    expect(msg).toMatch(/regions\.us-east\.backup\.s3\.endpoint: must be an http:\/\/ or https:\/\/ URL without a user or password/);
    expect(msg).toMatch(/regions\.us-east\.backup\.s3\.secretAccessKey: credentials never go in the config: set AWS_ACCESS_KEY_ID/);
    expect(msg).toMatch(/regions\.us-east\.backup\.s3\.region: required/);
    expect(msg).not.toContain('sEcReT-vAlUe-1');
    expect(msg).not.toContain('pw-secret');
  });

  it('dir and s3 are exclusive, one of them is needed; two regions cannot share a bucket', () => {
    expect(problems(config('{ dir: /b/us, s3: { bucket: abc, region: us-east-1 } }'))).toMatch(
      /regions\.us-east\.backup\.s3: set dir or s3, not both/,
    );
    expect(problems(config('{ encrypt: true }'))).toMatch(/regions\.us-east\.backup\.dir: set dir \(a folder\) or s3 \(a bucket\)/);
    expect(problems(config('{ s3: { bucket: shared-b, region: us-east-1 } }', '{ s3: { bucket: shared-b, region: eu-west-1 } }'))).toMatch(
      /regions\.eu-west\.backup\.s3\.bucket: bucket "shared-b" is also region us-east's; each region's backups go only to its own bucket/,
    );
  });
});
