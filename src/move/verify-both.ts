import type { ShardClient } from '../fleet/shard-connections.js';
import { sqlDigest } from '../copy/sql-digest.js';
import { recordDigest } from '../copy/record-digest.js';
import type { ForeignKeyCheck } from '../copy/pool-load.js';
import type { CopyRun, Streamed } from './copy-stream.js';
import { assertSameDigests, type TableCheck } from './verify-checks.js';

/**
 * Per table, measured on both sides at once, each by the same query inside PostgreSQL (the source
 * in its snapshot, the target in its loading transaction), not by the copier; any difference
 * throws MOVE_VERIFY. Between placements of one model (pool → pool: the same tables, columns and
 * types, preflight made sure of the version) by recordDigest, about 9 times cheaper than making
 * each row's text; across models by sqlDigest, whose row text does not depend on how each side
 * declares its types. Move complete and rollback measure again by the kind the hash records.
 */
export async function verifyBothSides(
  run: CopyRun,
  t: ShardClient,
  streamed: Streamed[],
  foreignKeys: ForeignKeyCheck,
): Promise<TableCheck[]> {
  const digest = digestOf(run);
  const checks: TableCheck[] = [];
  for (const [i, tb] of run.tables.entries()) {
    const [s, d] = await Promise.all([digest(run.source, tb, run.srcScope, run.config), digest(t, tb, run.dstScope, run.config)]);
    checks.push({ ...streamed[i], source: { rows: s.rows, hash: s.hash }, target: { rows: d.rows, hash: d.hash }, foreignKeys });
  }
  return assertSameDigests(checks);
}

/** Pool → pool (one model) compares record digests, the same tables and types; across models the row text. */
export function digestOf(run: CopyRun): typeof recordDigest | typeof sqlDigest {
  return run.plan.from.model === run.plan.to.model ? recordDigest : sqlDigest;
}
