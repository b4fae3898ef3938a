#!/usr/bin/env node
// An S3-compatible server (s3rver, as the tests start it: test/helpers/s3-server.ts) for the
// benchmarks, in its own process so its CPU and memory are not tenantctl's. Runs until killed.
//
//   node bench/lib/s3rver.mjs DIR BUCKET...   # prints its port on stdout once it listens
// Credential: AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER (s3rver's fixed one).
import S3rver from 's3rver';

const [dir, ...buckets] = process.argv.slice(2);
if (!dir || buckets.length === 0) {
  process.stderr.write('usage: node bench/lib/s3rver.mjs DIR BUCKET...\n');
  process.exit(2);
}
const server = new S3rver({
  port: 0,
  address: '127.0.0.1',
  silent: true,
  directory: dir,
  configureBuckets: buckets.map((name) => ({ name })),
});
const { port } = await server.run();
process.stdout.write(`${port}\n`);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => server.close().then(() => process.exit(0)));
