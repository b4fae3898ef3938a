#!/usr/bin/env node
// The baseline of bench/s3-backup.sh: `pg_dump | aws s3 cp - s3://…` and back, done with the
// AWS SDK's own streaming uploader (@aws-sdk/lib-storage Upload, its default part size and
// queue) and a plain GetObject.
//
//   pg_dump -Fc … | node bench/lib/s3-pipe.mjs up ENDPOINT BUCKET KEY
//   node bench/lib/s3-pipe.mjs down ENDPOINT BUCKET KEY | pg_restore …
// Credentials from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const [dir, endpoint, Bucket, Key] = process.argv.slice(2);
if (!['up', 'down'].includes(dir) || !Key) {
  process.stderr.write('usage: node bench/lib/s3-pipe.mjs up|down ENDPOINT BUCKET KEY\n');
  process.exit(2);
}
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// As tenantctl's client (src/backup/s3-client.ts): checksums only where S3 requires them.
const client = new S3Client({
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
if (dir === 'up') {
  await new Upload({ client, params: { Bucket, Key, Body: process.stdin } }).done();
} else {
  const r = await client.send(new GetObjectCommand({ Bucket, Key }));
  await pipeline(r.Body, process.stdout);
}
