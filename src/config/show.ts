import { stringify } from 'yaml';
import { redactDeep, redactUrl } from './redact.js';
import type { Config } from './types.js';

/**
 * The resolved config as an operator should see it: defaults filled in, `${VAR}` read, every
 * URL's password and every secret replaced by `***`.
 *
 * @example
 *   shownConfig(config).regions['us-east'].shards.us1.url // 'postgres://postgres:***@127.0.0.1:55431/postgres'
 */
export function shownConfig(c: Config) {
  return redactDeep({
    file: c.file,
    catalog: { ...c.catalog, url: redactUrl(c.catalogUrl) },
    defaults: c.defaults,
    tiers: c.tiers,
    tenantKey: c.tenantKey,
    rls: c.rls,
    servingRole: {
      name: c.servingRole.name,
      password: c.servingRole.password ? '***' : undefined,
      connectionLimit: c.servingRole.connectionLimit,
    },
    migrations: c.migrations,
    dev: c.dev,
    regions: Object.fromEntries(
      Object.entries(c.regions).map(([name, r]) => [
        name,
        {
          ...r,
          shards: Object.fromEntries(
            Object.entries(r.shards).map(([s, v]) => [s, { ...v, url: v.url === undefined ? undefined : redactUrl(v.url) }]),
          ),
        },
      ]),
    ),
  });
}

export function configAsYaml(c: Config): string {
  return stringify(shownConfig(c)).trimEnd();
}
