import { z } from 'zod';

/**
 * The shape of tenants.config.yaml. Objects are strict: an unknown key (a typo) is an error,
 * never a silent default.
 */
const identifier = z
  .string()
  .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lowercase SQL identifier (letters, digits, underscore)');
const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be lowercase letters, digits and hyphens, starting with a letter');
const duration = z
  .string()
  .regex(/^\d+(ms|s|min)$/, 'must be a duration such as 500ms, 5s or 2min');
const url = z.string().min(1, 'required').refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === 'postgres:' || u.protocol === 'postgresql:';
  } catch {
    return false;
  }
}, 'must be a postgres:// URL');

export const MODELS = ['pool', 'schema', 'database'] as const;
export type Model = (typeof MODELS)[number];

const shardSchema = z.strictObject({
  url,
  maxConnections: z.number().int().min(1).max(1000).default(10),
  embedded: z.boolean().default(false),
  poolDatabase: identifier.default('tenant_pool'),
  tenantDatabase: identifier.default('tenant_schemas'),
});

const regionSchema = z.strictObject({
  residency: name.optional(),
  shards: z.record(name, shardSchema).refine((s) => Object.keys(s).length > 0, 'at least one shard'),
  // encrypt: archives of this region's tenants encrypted with per-tenant data keys (src/backup/keys.ts).
  backup: z.strictObject({ dir: z.string().min(1), encrypt: z.boolean().default(false) }).optional(),
});

export const configSchema = z
  .strictObject({
    catalog: z.strictObject({
      url: url.optional(),
      shard: name.optional(),
      database: identifier.default('tenantctl_catalog'),
    }),
    regions: z.record(name, regionSchema).refine((r) => Object.keys(r).length > 0, 'at least one region'),
    defaults: z
      .strictObject({
        region: name.optional(),
        tier: name.optional(),
        concurrency: z.number().int().min(1).max(256).default(8),
      })
      .default({ concurrency: 8 }),
    tiers: z
      .record(name, z.strictObject({ model: z.enum(MODELS) }))
      .default({ free: { model: 'pool' }, standard: { model: 'schema' }, enterprise: { model: 'database' } }),
    tenantKey: z
      .strictObject({
        column: identifier.default('tenant_id'),
        type: z.enum(['uuid', 'bigint', 'text']).default('uuid'),
        tables: z.record(identifier, identifier).default({}),
      })
      .default({ column: 'tenant_id', type: 'uuid', tables: {} }),
    rls: z.strictObject({ setting: z.string().regex(/^[a-z_]+\.[a-z_]+$/, 'must look like app.tenant_id') }).default({
      setting: 'app.tenant_id',
    }),
    servingRole: z
      .strictObject({ name: identifier, password: z.string().optional() })
      .default({ name: 'app_user' }),
    migrations: z
      .strictObject({
        dir: z.string().default('migrations'),
        lockTimeout: duration.default('5s'),
        statementTimeout: duration.default('5min'),
        targetTimeout: duration.default('30min'),
        retries: z.number().int().min(0).max(20).default(3),
      })
      .default({ dir: 'migrations', lockTimeout: '5s', statementTimeout: '5min', targetTimeout: '30min', retries: 3 }),
    dev: z
      .strictObject({ dataDir: z.string().default('.tenantctl/dev') })
      .default({ dataDir: '.tenantctl/dev' }),
  })
  .superRefine((cfg, ctx) => {
    if (!cfg.catalog.url && !cfg.catalog.shard) {
      ctx.addIssue({ code: 'custom', path: ['catalog'], message: 'set catalog.url or catalog.shard' });
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
    if (cfg.catalog.shard && !shards.has(cfg.catalog.shard)) {
      ctx.addIssue({ code: 'custom', path: ['catalog', 'shard'], message: `unknown shard "${cfg.catalog.shard}"` });
    }
    if (cfg.defaults.region && !cfg.regions[cfg.defaults.region]) {
      ctx.addIssue({ code: 'custom', path: ['defaults', 'region'], message: `unknown region "${cfg.defaults.region}"` });
    }
    if (cfg.defaults.tier && !cfg.tiers[cfg.defaults.tier]) {
      ctx.addIssue({ code: 'custom', path: ['defaults', 'tier'], message: `unknown tier "${cfg.defaults.tier}"` });
    }
  });

export type RawConfig = z.infer<typeof configSchema>;
export type ShardConfig = z.infer<typeof shardSchema>;
