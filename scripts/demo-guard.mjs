// Guard of `npm run demo` (scripts/demo.sh): the demo deletes and creates demo-* tenants, so it
// runs only on a config whose every shard is written `embedded: true` (a local cluster that
// `tenantctl dev up` runs), never on a fleet of real clusters. The literal value counts: a
// `${VAR}` there could turn a real shard into an "embedded" one from the environment.
//
// Usage: node scripts/demo-guard.mjs tenants.config.yaml   (exit 2 with the shards, or 0)
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const file = process.argv[2];
let doc;
try {
  doc = parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.error(`demo: cannot read ${file}: ${err instanceof Error ? err.message.split('\n')[0] : err}`);
  process.exit(2);
}
const shards = [];
const notEmbedded = [];
for (const [region, r] of Object.entries(doc?.regions ?? {})) {
  for (const [name, shard] of Object.entries(r?.shards ?? {})) {
    shards.push(name);
    if (shard?.embedded !== true) notEmbedded.push(`regions.${region}.shards.${name}`);
  }
}
if (shards.length === 0 || notEmbedded.length > 0) {
  console.error(
    `demo: refusing to run: the demo deletes and creates tenants, so every shard of ${file} must be \`embedded: true\` (a local cluster of tenantctl dev up).` +
      (notEmbedded.length ? `\n  not embedded: ${notEmbedded.join(', ')}` : '\n  it lists no shards') +
      '\n  Restore the shipped tenants.config.yaml (git checkout tenants.config.yaml), or run tenantctl yourself against that fleet.',
  );
  process.exit(2);
}
