import pg from 'pg';
import type { DynamicKind } from './spec.js';

/**
 * A completion waits at most this long for the catalog to connect, and as long again for its
 * answer: a Tab must not hang. TENANTCTL_COMPLETE_TIMEOUT_MS raises it (a catalog far away).
 */
export function completeTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const ms = Number(env.TENANTCTL_COMPLETE_TIMEOUT_MS);
  return Number.isInteger(ms) && ms > 0 ? ms : 500;
}

/**
 * The words a shell offers for a dynamic kind: shards, regions and tiers from the config, slugs
 * from the catalog (a plain read, never creating or migrating it). Anything missing (no config, a
 * config that does not load, the catalog down or slow) gives an empty list, never an error:
 * completion falls back to the static part.
 *
 * @example
 *   await completionWords('slugs', { config: 'tenants.config.yaml' }); // ['acme', 'globex']
 */
export async function completionWords(kind: DynamicKind, opts: { config?: string }): Promise<string[]> {
  const { loadConfig } = await import('../config/load.js');
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({ file: opts.config });
  } catch {
    return [];
  }
  if (kind === 'shards') return config.shards.map((s) => s.name);
  if (kind === 'regions') return Object.keys(config.regions);
  if (kind === 'tiers') return Object.keys(config.tiers);
  const client = new pg.Client({
    connectionString: config.catalogUrl,
    connectionTimeoutMillis: completeTimeoutMs(),
    query_timeout: completeTimeoutMs(),
    application_name: 'tenantctl-complete',
  });
  try {
    await client.connect();
    const { rows } = await client.query<{ slug: string }>('select slug from tenants order by slug');
    return rows.map((r) => r.slug);
  } catch {
    return [];
  } finally {
    client.end().catch(() => undefined);
  }
}
