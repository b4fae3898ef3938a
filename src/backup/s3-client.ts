import type { S3Client } from '@aws-sdk/client-s3';
import { registerSecret } from '../config/redact.js';
import { TenantctlError, UsageError } from '../errors.js';
import type { S3BackupConfig } from '../config/s3-config.js';

/**
 * The S3 client of one region's bucket. Credentials come only from the SDK's default chain
 * (environment, shared config and credentials files, container and instance roles); whatever
 * secret it may read from the environment is registered for redaction, so no message prints it.
 * Checksums only where S3 requires them: the newer default (a CRC trailer on every upload) is
 * refused by many S3-compatible servers.
 */
export interface S3Sdk {
  client: S3Client;
  s3: typeof import('@aws-sdk/client-s3');
  Upload: typeof import('@aws-sdk/lib-storage').Upload;
}

/**
 * The SDK is loaded on first use (it takes a second to import): a command that never touches a
 * bucket never pays for it.
 */
export async function loadS3(c: S3BackupConfig): Promise<S3Sdk> {
  const [a, b] = await Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]);
  const s3 = namedExports(a);
  return { client: s3Client(s3, c), s3, Upload: namedExports(b).Upload };
}

/** The bundle (scripts/build.mjs) hands a CommonJS package's exports over as `default` only; tsx and node name them. */
function namedExports<T extends object>(m: T): T {
  return 'default' in m && m.default && typeof m.default === 'object' && Object.keys(m).length === 1 ? (m.default as T) : m;
}

function s3Client(sdk: typeof import('@aws-sdk/client-s3'), c: S3BackupConfig): S3Client {
  registerSecret(process.env.AWS_SECRET_ACCESS_KEY);
  registerSecret(process.env.AWS_SESSION_TOKEN);
  // The SDK warns on stderr that its future versions want a newer Node; not the operator's concern here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new sdk.S3Client({
    region: c.region,
    ...(c.endpoint ? { endpoint: c.endpoint } : {}),
    forcePathStyle: c.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // An endpoint that does not answer fails in seconds, not minutes.
    requestHandler: { connectionTimeout: 5000 },
    maxAttempts: 3,
  });
}

const CREDENTIAL = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'TokenRefreshRequired',
  'InvalidToken',
  'InvalidClientTokenId',
  'CredentialsProviderError',
]);
const DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'TimeoutError', 'RequestTimeout']);

/**
 * What the object store said, as a tenantctl error naming the bucket and the fix. The SDK's own
 * message is not passed on for credential errors (it can quote the request); only its error name.
 */
export function s3Error(err: unknown, where: { bucket: string; location: string; doing: string; region?: string }): Error {
  if (err instanceof TenantctlError) return err;
  const e = err as { name?: string; code?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? e?.Code ?? '';
  const code = e?.code ?? '';
  const status = e?.$metadata?.httpStatusCode;
  const what = `${where.doing} ${where.location}`;
  if (name === 'NoSuchBucket')
    return new UsageError(
      'BACKUP_STORAGE',
      `${what}: bucket "${where.bucket}" does not exist`,
      `create the bucket, or fix regions.${where.region ?? '<region>'}.backup.s3.bucket in the config`,
    );
  if (CREDENTIAL.has(name) || (name === 'Error' && /credential/i.test(e?.message ?? '')))
    return new UsageError(
      'BACKUP_STORAGE',
      `${what}: the AWS credential was refused for bucket "${where.bucket}" (${name === 'CredentialsProviderError' ? 'no credential found' : name})`,
      'set a valid AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role) in the environment; a session token may have expired',
    );
  if (name === 'AccessDenied' || name === 'AllAccessDisabled' || status === 403)
    return new UsageError(
      'BACKUP_STORAGE',
      `${what}: access to bucket "${where.bucket}" was refused (${name || 'HTTP 403'}: a wrong or expired credential, or one without permission)`,
      'check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or the instance role) in the environment, and that the credential may s3:ListBucket, s3:ListBucketMultipartUploads, s3:GetObject, s3:PutObject, s3:DeleteObject and s3:AbortMultipartUpload on the bucket and prefix',
    );
  if (DOWN.has(name) || DOWN.has(code) || /socket hang up|aborted|ECONN|timed? ?out/i.test(e?.message ?? ''))
    return new TenantctlError(
      'BACKUP_STORAGE_DOWN',
      `${what}: the object store did not answer or the transfer was cut off (${code || name || 'connection lost'})`,
      'check the endpoint is reachable, then run the command again; nothing half-written is listed',
    );
  return new TenantctlError('BACKUP_STORAGE_DOWN', `${what}: ${name || 'error'}${e?.message ? `: ${e.message}` : ''}`);
}

/** A 404 of HeadObject/GetObject (the object is not there). */
export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || (e?.$metadata?.httpStatusCode === 404 && e?.name !== 'NoSuchBucket');
}
