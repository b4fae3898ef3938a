/**
 * The shape of tenants.config.yaml. Objects are strict: an unknown key (a typo) is an error,
 * never a silent default.
 *
 * @module
 */
import { DURATION, parseDurationMs } from './duration.js';
import * as z from 'zod/mini';
import { preprocess } from './zod.js';
import { tierLimitKeys } from './tier-limits.js';
import { s3BackupSchema, sharedBucketProblems } from './s3-config.js';

const identifier = z.string().check(z.regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lowercase SQL identifier (letters, digits, underscore)'));
const name = z.string().check(z.regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be lowercase letters, digits and hyphens, starting with a letter'));
const duration = z.string().check(z.regex(DURATION, 'must be a duration such as 500ms, 5s or 2min'));
/**
 * A limit PostgreSQL holds as a setting (lock_timeout, statement_timeout) or tenantctl as a timer:
 * 0 there means no limit at all, which a config would give without meaning to (a DDL waiting
 * for its lock forever, every application query queued behind it).
 */
const limit = duration.check(
  z.refine((v) => (parseDurationMs(v) ?? 1) >= 1, 'must be above 0 (0 would mean no limit at all); leave it out for the default'),
  z.refine((v) => (parseDurationMs(v) ?? 0) <= 2_147_483_647, 'must be at most 2147483647ms (about 24 days)'),
);
const parsedUrl = (v: string): URL | null => {
  try {
    return new URL(v);
  } catch {
    return null;
  }
};
const url = z.string().check(
  z.minLength(1, 'required'),
  // `postgresql:/user:pw@host/db` (one slash) parses, with no host: pg would then connect to
  // localhost:5432, another cluster than the one meant. Two slashes and a host, or refused.
  z.refine((v) => {
    const u = parsedUrl(v);
    return (
      u !== null && (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && /^postgres(?:ql)?:\/\//i.test(v) && u.hostname !== ''
    );
  }, 'must be a postgres:// URL with a host: two slashes, then user:password@host:port/database'),
  // pg does not read ?password= (logins fail), and the value would print as is: one place for it.
  z.refine(
    (v) => !parsedUrl(v)?.searchParams.has('password'),
    'the password goes in the user part of the URL (user:password@host), not in ?password=',
  ),
);

/**
 * A whole number. A string of digits (what `${VAR}` leaves, e.g. `maxConnections: ${US1_MAX:-20}`)
 * counts as the number; anything else is an error that shows the value.
 */
function wholeNumber(min: number, max: number) {
  return preprocess(
    (v) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({
        error: (i) => (i.code === 'invalid_type' && i.input !== undefined ? `must be a whole number (got ${shown(i.input)})` : undefined),
      })
      .check(z.int('must be a whole number'), z.gte(min, `must be at least ${min}`), z.lte(max, `must be at most ${max}`)),
  );
}

/** true or false; the strings "true" and "false" (from `${VAR}`) count, in any case. */
const flag = preprocess(
  (v) => (typeof v === 'string' && /^\s*(true|false)\s*$/i.test(v) ? v.trim().toLowerCase() === 'true' : v),
  z.boolean({
    error: (i) => (i.code === 'invalid_type' && i.input !== undefined ? `must be true or false (got ${shown(i.input)})` : undefined),
  }),
);

function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** A host name, an IPv4 address or an IPv6 address (bare or in brackets). */
const host = z.string().check(z.regex(/^([A-Za-z0-9._-]+|\[?[0-9A-Fa-f:.]+\]?)$/, 'must be a host name or an IP address'));

/** A connection given as parts instead of a URL; tenantctl builds (and encodes) the URL. */
const connectionParts = {
  host: z.optional(host),
  port: z.optional(wholeNumber(1, 65535)),
  user: z.optional(z.string().check(z.minLength(1, 'must not be empty'))),
  password: z.optional(z.string()),
};
const PART_KEYS = ['host', 'port', 'user', 'password', 'database'] as const;

export const MODELS = ['pool', 'schema', 'database'] as const;
export type Model = (typeof MODELS)[number];

const shardSchema = z
  .strictObject({
    url: z.optional(url),
    ...connectionParts,
    database: z.optional(z.string().check(z.minLength(1, 'must not be empty'))),
    maxConnections: z._default(wholeNumber(1, 1000), 10),
    embedded: z._default(flag, false),
    poolDatabase: z._default(identifier, 'tenant_pool'),
    tenantDatabase: z._default(identifier, 'tenant_schemas'),
    // Point-in-time restore (src/pitr/): where pgBackRest finds this shard's data directory and
    // socket. Embedded shards need none (their dev cluster's folder is known).
    pitr: z.optional(
      z.strictObject({
        pgPath: z.string().check(z.minLength(1)),
        socketPath: z.optional(z.string().check(z.minLength(1))),
        pgUser: z._default(z.string().check(z.minLength(1)), 'postgres'),
      }),
    ),
  })
  .check(
    z.superRefine((s, ctx) => {
      const parts = PART_KEYS.filter((k) => s[k] !== undefined);
      if (s.url !== undefined) {
        for (const k of parts) {
          ctx.addIssue({
            code: 'custom',
            path: [k],
            message: 'give the connection either as url or as host, port, user, password and database, not both',
          });
        }
      } else if (parts.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: 'required (or give host, port, user, password and database instead)' });
      } else if (s.host === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['host'],
          message: 'required when the connection is given as parts (host, port, user, password, database)',
        });
      }
    }),
  );

/** Compressions of backup archives' data files (src/backup/compression.ts); brotli is the default. */
export const BACKUP_COMPRESSIONS = ['brotli', 'gzip', 'none'] as const;

const regionSchema = z.strictObject({
  residency: z.optional(name),
  shards: z.record(name, shardSchema).check(z.refine((s) => Object.keys(s).length > 0, 'at least one shard')),
  // encrypt: archives of this region's tenants encrypted with per-tenant data keys (src/backup/keys.ts).
  // compression: of the archives' data files (src/backup/compression.ts).
  // dir or s3 (src/config/s3-config.ts): exactly one.
  backup: z.optional(
    z
      .strictObject({
        dir: z.optional(z.string().check(z.minLength(1))),
        s3: z.optional(s3BackupSchema),
        encrypt: z._default(z.boolean(), false),
        compression: z._default(z.enum(BACKUP_COMPRESSIONS), 'brotli'),
      })
      .check(
        z.superRefine((b, ctx) => {
          if ((b.dir === undefined) === (b.s3 === undefined))
            ctx.addIssue({
              code: 'custom',
              path: b.dir === undefined ? ['dir'] : ['s3'],
              message: b.dir === undefined ? 'set dir (a folder) or s3 (a bucket)' : 'set dir or s3, not both',
            });
        }),
      ),
  ),
  // pitr: the region's pgBackRest repository (src/pitr/): repo is a path; options are pgBackRest's
  // own repo1-* settings written as they are (an S3 repository: repo1-type: s3, repo1-s3-bucket...);
  // scratch: where restores to a point in time unpack the shard (default: the temp folder).
  pitr: z.optional(
    z.strictObject({
      repo: z.string().check(z.minLength(1)),
      options: z._default(
        z.record(z.string().check(z.regex(/^[a-z0-9-]+$/, 'a pgBackRest option name')), z.union([z.string(), z.number()])),
        {},
      ),
      scratch: z.optional(z.string().check(z.minLength(1))),
    }),
  ),
});

export const configSchema = z
  .strictObject({
    catalog: z.strictObject({
      url: z.optional(url),
      shard: z.optional(name),
      ...connectionParts,
      database: z._default(identifier, 'tenantctl_catalog'),
    }),
    regions: z.record(name, regionSchema).check(z.refine((r) => Object.keys(r).length > 0, 'at least one region')),
    defaults: z._default(
      z.strictObject({
        region: z.optional(name),
        tier: z.optional(name),
        concurrency: z._default(wholeNumber(1, 256), 8),
      }),
      { concurrency: 8 },
    ),
    tiers: z._default(
      // limits and quotas per tier (issue 19, src/config/tier-limits.ts): all optional.
      z.record(name, z.strictObject({ model: z.enum(MODELS), ...tierLimitKeys })),
      { free: { model: 'pool' }, standard: { model: 'schema' }, enterprise: { model: 'database' } },
    ),
    tenantKey: z._default(
      z.strictObject({
        column: z._default(identifier, 'tenant_id'),
        type: z._default(z.enum(['uuid', 'bigint', 'text']), 'uuid'),
        tables: z._default(z.record(identifier, identifier), {}),
        // Tables of the pool schema without the key, the same rows for every tenant: a list (the
        // serving role reads them) or a map to `read` | `write`. Every other table must carry the key.
        shared: z.pipe(
          z._default(z.union([z.array(identifier), z.record(identifier, z.enum(['read', 'write']))]), []),
          z.transform(
            (s: string[] | Record<string, 'read' | 'write'>): Record<string, 'read' | 'write'> =>
              Array.isArray(s) ? Object.fromEntries(s.map((t) => [t, 'read' as const])) : s,
          ),
        ),
      }),
      { column: 'tenant_id', type: 'uuid', tables: {}, shared: {} },
    ),
    rls: z._default(z.strictObject({ setting: z.string().check(z.regex(/^[a-z_]+\.[a-z_]+$/, 'must look like app.tenant_id')) }), {
      setting: 'app.tenant_id',
    }),
    servingRole: z._default(
      z.strictObject({
        name: identifier,
        password: z.optional(z.string()),
        // The role every pool tenant's application shares: its CONNECTION LIMIT bounds the pool
        // tenants together, so they cannot take every connection of a shard from tenantctl and
        // the other models' tenants (doctor: connection headroom).
        connectionLimit: z.optional(wholeNumber(1, 100_000)),
      }),
      { name: 'app_user' },
    ),
    migrations: z._default(
      z.strictObject({
        dir: z._default(z.string(), 'migrations'),
        // While a migration's DDL waits for its lock, every later query on the table queues
        // behind it: short waits, retried with gaps between them (src/migrate/retry-schedule.ts).
        lockTimeout: z._default(limit, '1s'),
        // How long a target waits for another tenantctl session migrating it (its advisory lock):
        // that wait holds up no application query, unlike a DDL's lock wait (lockTimeout).
        lockWait: z._default(duration, '30s'),
        statementTimeout: z._default(limit, '5min'),
        targetTimeout: z._default(limit, '30min'),
        retries: z._default(wholeNumber(0, 100), 10),
      }),
      { dir: 'migrations', lockTimeout: '1s', lockWait: '30s', statementTimeout: '5min', targetTimeout: '30min', retries: 10 },
    ),
    dev: z._default(z.strictObject({ dataDir: z._default(z.string(), '.tenantctl/dev') }), { dataDir: '.tenantctl/dev' }),
  })
  .check(
    z.superRefine((cfg, ctx) => {
      // Exactly one way to reach the catalog: a URL, a shard of the fleet, or parts of a connection.
      const c = cfg.catalog;
      const parts = (['host', 'port', 'user', 'password'] as const).filter((k) => c[k] !== undefined);
      const forms = [c.url !== undefined && 'url', c.shard !== undefined && 'shard', parts.length > 0 && 'host'].filter(Boolean);
      if (forms.length === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['catalog'],
          message: 'set catalog.url, catalog.shard, or catalog.host (with port, user, password, database)',
        });
      } else if (forms.length > 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['catalog'],
          message: `set only one of catalog.url, catalog.shard and catalog.host/port/user/password (found ${[c.url !== undefined && 'url', c.shard !== undefined && 'shard', ...parts].filter(Boolean).join(', ')})`,
        });
      } else if (parts.length > 0 && c.host === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['catalog', 'host'],
          message: 'required when the catalog connection is given as parts (host, port, user, password, database)',
        });
      }
      const shards = new Map<string, string>();
      for (const [region, r] of Object.entries(cfg.regions)) {
        for (const shard of Object.keys(r.shards)) {
          const other = shards.get(shard);
          if (other) {
            ctx.addIssue({
              code: 'custom',
              path: ['regions', region, 'shards', shard],
              message: `shard name is also used in region ${other}; shard names must be unique`,
            });
          }
          shards.set(shard, region);
        }
      }
      for (const p of sharedBucketProblems(cfg.regions))
        ctx.addIssue({ code: 'custom', path: ['regions', p.region, 'backup', 's3', 'bucket'], message: p.message });
      if (cfg.catalog.shard && !shards.has(cfg.catalog.shard)) {
        ctx.addIssue({ code: 'custom', path: ['catalog', 'shard'], message: `unknown shard "${cfg.catalog.shard}"` });
      }
      for (const table of Object.keys(cfg.tenantKey.shared)) {
        if (table in cfg.tenantKey.tables) {
          ctx.addIssue({
            code: 'custom',
            path: ['tenantKey', 'shared'],
            message: `"${table}" is both shared (no tenant key) and keyed by ${cfg.tenantKey.tables[table]} in tenantKey.tables; keep it in one of the two`,
          });
        }
      }
      if (cfg.defaults.region && !cfg.regions[cfg.defaults.region]) {
        ctx.addIssue({ code: 'custom', path: ['defaults', 'region'], message: `unknown region "${cfg.defaults.region}"` });
      }
      if (cfg.defaults.tier && !cfg.tiers[cfg.defaults.tier]) {
        ctx.addIssue({ code: 'custom', path: ['defaults', 'tier'], message: `unknown tier "${cfg.defaults.tier}"` });
      }
    }),
  );

export type RawConfig = z.infer<typeof configSchema>;
export type ShardConfig = z.infer<typeof shardSchema>;
