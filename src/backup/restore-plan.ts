import type { Config, Model } from '../config/types.js';
import { MODELS } from '../config/schema.js';
import { UsageError } from '../errors.js';
import type { MigrationFile } from '../migrate/files.js';
import type { Manifest } from './manifest.js';

/**
 * The migration files a backup was taken at: each applied migration recorded in the manifest,
 * found in the migrations folder with the same checksum. A restore creates the placement with
 * these, loads the data, then migrates to head. Refuses (exit 2) when the folder no longer holds
 * that version.
 *
 * @example
 *   filesAtVersion(migrations, manifest, id).map((m) => m.id) // ['0001_…', '0002_…']
 */
export function filesAtVersion(files: MigrationFile[], m: Manifest, id: string): MigrationFile[] {
  const byId = new Map(files.map((f) => [f.id, f]));
  const problems: string[] = [];
  for (const a of m.migrations.applied) {
    const f = byId.get(a.id);
    if (!f) problems.push(`${a.id} is not in the migrations folder`);
    else if (f.checksum !== a.checksum) problems.push(`${a.id} changed since the backup (checksum)`);
  }
  if (problems.length) {
    throw new UsageError(
      'MIGRATION_FILES',
      `backup ${id} is at migration version ${m.migrations.version ?? '(none)'}, which this migrations folder no longer holds: ${problems.join('; ')}`,
      'restore with a checkout of the migrations as they were at the backup (git), or use a newer backup',
    );
  }
  const applied = new Set(m.migrations.applied.map((a) => a.id));
  return files.filter((f) => applied.has(f.id));
}

export interface RestoreDestination {
  slug: string;
  model: Model;
  shard: string;
  region: string;
  residency: string | null;
}

/**
 * Where a restore as a new tenant goes: `--model` and `--shard`, else the backup's own; the
 * region is the shard's. A region that breaks the backup's residency is refused (exit 2).
 */
export function restoreDestination(config: Config, m: Manifest, o: { as?: string; shard?: string; model?: string }): RestoreDestination {
  const model = (o.model ?? m.tenant.model) as Model;
  if (!(MODELS as readonly string[]).includes(model)) {
    throw new UsageError('UNKNOWN_MODEL', `unknown model "${o.model}"`, `use one of: ${MODELS.join(', ')}`);
  }
  const shardName = o.shard ?? m.tenant.shard;
  const shard = config.shards.find((s) => s.name === shardName);
  if (!shard) {
    throw new UsageError(
      'UNKNOWN_SHARD',
      `shard "${shardName}" is not in the config${o.shard ? '' : ' (the backup was taken there)'}`,
      `pass --shard with one of: ${config.shards.map((s) => s.name).join(', ')}`,
    );
  }
  const residency = m.tenant.residency;
  if (residency && shard.residency !== residency) {
    const ok = config.shards.filter((s) => s.residency === residency).map((s) => s.name);
    throw new UsageError(
      'RESIDENCY',
      `restoring ${m.tenant.slug} on shard ${shard.name} (region ${shard.region}, residency ${shard.residency ?? 'unset'}) breaks its residency "${residency}"`,
      ok.length ? `use --shard ${ok.join(' or --shard ')}` : `no shard has residency "${residency}"`,
    );
  }
  return { slug: o.as ?? m.tenant.slug, model, shard: shard.name, region: shard.region, residency: residency ?? shard.residency ?? null };
}
