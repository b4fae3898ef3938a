import * as z from 'zod/mini';
// zod/mini's messages (the locale) come with it.
import './zod.js';

/**
 * `regions.<r>.backup.s3`: where a region's archives live in S3-compatible object storage. The
 * config names the place, never a credential: the keys come from the AWS SDK's default chain
 * (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared files, an instance or
 * container role), so a config file can be committed and shown (`config show`) as it is.
 */
const CREDENTIAL_KEYS = ['accessKeyId', 'secretAccessKey', 'sessionToken', 'credentials', 'accessKey', 'secretKey', 'profile'];

/** S3's bucket naming rules (3-63 characters, lowercase, digits, dots, hyphens). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export const s3BackupSchema = z.pipe(
  z
    .catchall(
      z.object({
        bucket: z.string().check(z.regex(BUCKET, 'must be an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)')),
        /** Keys start with it (`tenantctl/us-east`); no leading or trailing slash needed. */
        prefix: z
          ._default(z.string(), '')
          .check(z.refine((p) => !p.split('/').some((part) => part === '.' || part === '..'), 'must not contain . or .. segments')),
        /** An S3-compatible server (MinIO, Ceph, R2…); absent: AWS itself. */
        endpoint: z.optional(
          z.string().check(
            z.refine((v) => {
              try {
                const u = new URL(v);
                return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
              } catch {
                return false;
              }
            }, 'must be an http:// or https:// URL without a user or password (credentials come from the AWS environment)'),
          ),
        ),
        region: z
          .string()
          .check(z.regex(/^[a-z0-9-]{2,40}$/, 'must be an AWS region name such as eu-west-1 (us-east-1 for most S3-compatible servers)')),
        /** Path-style addressing (`endpoint/bucket/key`): what MinIO and most S3-compatible servers want. */
        forcePathStyle: z._default(z.boolean(), false),
      }),
      z.unknown(),
    )
    .check(
      z.superRefine(
        (s, ctx) => {
          // Strict, but a credential put here gets told where credentials go (its value is never shown).
          const known = new Set(['bucket', 'prefix', 'endpoint', 'region', 'forcePathStyle']);
          for (const k of typeof s === 'object' && s !== null ? Object.keys(s) : []) {
            if (known.has(k)) continue;
            ctx.addIssue({
              code: 'custom',
              path: [k],
              message: CREDENTIAL_KEYS.includes(k)
                ? 'credentials never go in the config: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or use an instance role) in the environment of tenantctl'
                : 'unknown key (bucket, prefix, endpoint, region and forcePathStyle are the keys of backup.s3)',
            });
          }
        },
        // Also when another key of the block is wrong or missing: every problem at once.
        { when: () => true },
      ),
    ),
  z.transform(
    ({
      bucket,
      prefix,
      endpoint,
      region,
      forcePathStyle,
    }: {
      bucket: string;
      prefix: string;
      endpoint?: string;
      region: string;
      forcePathStyle: boolean;
    }) => ({
      bucket,
      prefix: prefix.replace(/^\/+|\/+$/g, ''),
      endpoint,
      region,
      forcePathStyle,
    }),
  ),
);

export type S3BackupConfig = z.infer<typeof s3BackupSchema>;

/**
 * Residency: each region's backups go to a bucket of its own. Two regions naming the same bucket
 * (at the same endpoint) would put one region's archives where the other's are read: refused at
 * load, one problem per region after the first.
 */
export function sharedBucketProblems(regions: Record<string, { backup?: { s3?: S3BackupConfig } }>): { region: string; message: string }[] {
  const seen = new Map<string, string>();
  const out: { region: string; message: string }[] = [];
  for (const [region, r] of Object.entries(regions)) {
    const s3 = r.backup?.s3;
    if (!s3) continue;
    const where = `${s3.endpoint ?? 'aws'} ${s3.bucket}`;
    const other = seen.get(where);
    if (other)
      out.push({
        region,
        message: `bucket "${s3.bucket}" is also region ${other}'s; each region's backups go only to its own bucket (residency)`,
      });
    else seen.set(where, region);
  }
  return out;
}
