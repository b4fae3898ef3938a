import type { RawConfig, ShardConfig } from './schema.js';

export type { Model } from './schema.js';

/** A shard with its name and region attached, as every feature wants it. */
export interface Shard extends Omit<ShardConfig, 'url'> {
  /** Its connection URL: as written, or built from host, port, user, password, database. */
  url: string;
  name: string;
  region: string;
  residency?: string;
}

/** The validated, interpolated config plus derived lookups. */
export interface Config extends RawConfig {
  /** Absolute path of the file it came from. */
  file: string;
  /** Directory of the file; relative paths in the config resolve against it. */
  baseDir: string;
  shards: Shard[];
  /** The catalog's connection URL, derived from catalog.shard when catalog.url is absent. */
  catalogUrl: string;
  defaultRegion: string;
  defaultTier: string;
  migrationsDir: string;
}
