/**
 * A tier's limits and quotas in the config (issue 19), and the units they are written in. Limits
 * are what PostgreSQL enforces (src/limits/, src/placement/limits.ts); quotas are what `usage`
 * measures against. Every key is optional: a tier with only `model` loads as before.
 *
 * @module
 */
import * as z from 'zod/mini';
import { preprocess } from './zod.js';

/** PostgreSQL's integer settings stop at 2^31 - 1 (milliseconds for timeouts, kB for memory). */
const PG_INT_MAX = 2_147_483_647;

const DURATION = /^(\d+)(ms|s|min|h)$/;
const SIZE = /^(\d+)\s*(B|kB|KB|MB|GB|TB)?$/;
const SIZE_UNITS: Record<string, number> = { B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/**
 * Milliseconds of a limit's duration ('5s', '250ms', '2min', '1h'); null when it does not parse.
 *
 * @example
 *   limitDurationMs('2min') // 120000
 */
export function limitDurationMs(value: string): number | null {
  const m = DURATION.exec(value.trim());
  if (!m) return null;
  const n = Number(m[1]);
  return n * { ms: 1, s: 1000, min: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'min' | 'h'];
}

/**
 * Bytes of a size: a whole number of bytes or one with a unit (B, kB, MB, GB, TB; 1024-based, as
 * PostgreSQL reads `work_mem`); null when it does not parse.
 *
 * @example
 *   sizeBytes('5GB') // 5368709120
 */
export function sizeBytes(value: string | number): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null;
  const m = SIZE.exec(value.trim());
  if (!m) return null;
  return Number(m[1]) * SIZE_UNITS[m[2] ?? 'B'];
}

function got(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** A timeout PostgreSQL can hold (1 ms up to 2^31 - 1 ms, about 24 days). */
const timeout = z.string({ error: (i) => `must be a duration such as 500ms, 5s or 2min (got ${got(i.input)})` }).check(
  z.superRefine((v, ctx) => {
    const ms = limitDurationMs(v);
    if (ms === null) ctx.addIssue({ code: 'custom', message: `must be a duration such as 500ms, 5s, 2min or 1h (got ${got(v)})` });
    else if (ms < 1 || ms > PG_INT_MAX) ctx.addIssue({ code: 'custom', message: `must be between 1ms and ${PG_INT_MAX}ms (got ${v})` });
  }),
);

/** A size in bytes (storage quota): no upper bound but JavaScript's exact integers. */
const size = z.union([z.string(), z.number()], { error: (i) => `must be a size such as 512MB or 5GB (got ${got(i.input)})` }).check(
  z.superRefine((v, ctx) => {
    const b = sizeBytes(v);
    if (b === null || !Number.isSafeInteger(b))
      ctx.addIssue({ code: 'custom', message: `must be a size such as 512MB or 5GB (units B, kB, MB, GB, TB; got ${got(v)})` });
  }),
);

/** A memory setting PostgreSQL keeps in kB: at least `minKb`, at most 2^31 - 1 kB. */
function kbSetting(minKb: number) {
  return size.check(
    z.superRefine((v, ctx) => {
      const b = sizeBytes(v);
      if (b === null) return;
      if (b % 1024 !== 0) ctx.addIssue({ code: 'custom', message: `must be a whole number of kB (got ${v})` });
      else if (b / 1024 < minKb || b / 1024 > PG_INT_MAX)
        ctx.addIssue({ code: 'custom', message: `must be between ${minKb}kB and ${PG_INT_MAX}kB (got ${v})` });
    }),
  );
}

/** A whole count; digit strings (from `${VAR}`) count as the number. */
function count(min: number, max: number) {
  return preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: (i) => `must be a whole number (got ${got(i.input)})` })
      .check(z.int(`must be a whole number`), z.gte(min, `must be at least ${min}`), z.lte(max, `must be at most ${max}`)),
  );
}

/** `unlimited` says so explicitly; it means the same as leaving the quota out. */
const unlimited = z.literal('unlimited');

const quotasSchema = z.strictObject({
  /** Bytes of the tenant's tables, indexes and TOAST. */
  storage: z.optional(z.union([unlimited, size])),
  /** Rows in total, or `{ total, perTable }`. */
  rows: z.optional(
    z.union([
      unlimited,
      count(0, Number.MAX_SAFE_INTEGER),
      z.strictObject({ total: z.optional(count(0, Number.MAX_SAFE_INTEGER)), perTable: z.optional(count(0, Number.MAX_SAFE_INTEGER)) }),
    ]),
  ),
  /** Open connections (pool tenants: sessions with application_name = the slug). */
  connections: z.optional(z.union([unlimited, count(0, 100_000)])),
});

/**
 * Limits a tier's tenants run under (all optional). A model with a role of its own gets them as
 * the role's CONNECTION LIMIT and settings; a pool tenant in its connection URL.
 */
export const tierLimitKeys = {
  connectionLimit: z.optional(count(1, 100_000)),
  statementTimeout: z.optional(timeout),
  idleInTransactionTimeout: z.optional(timeout),
  lockTimeout: z.optional(timeout),
  workMem: z.optional(kbSetting(64)),
  tempFileLimit: z.optional(kbSetting(1)),
  quotas: z.optional(quotasSchema),
};

export type TierQuotas = z.infer<typeof quotasSchema>;

/** A tier as the config holds it (model plus its optional limits and quotas). */
export interface TierLimits {
  connectionLimit?: number;
  statementTimeout?: string;
  idleInTransactionTimeout?: string;
  lockTimeout?: string;
  workMem?: string | number;
  tempFileLimit?: string | number;
  quotas?: TierQuotas;
}

/** A quota's number, or null when the tier sets none (absent or `unlimited`). */
export function quotaValue(v: string | number | undefined): number | null {
  if (v === undefined || v === 'unlimited') return null;
  return typeof v === 'number' ? v : sizeBytes(v);
}

/** The tier's row quotas: in total and per table (null: none). */
export function rowQuotas(q: TierQuotas | undefined): { total: number | null; perTable: number | null } {
  const r = q?.rows;
  if (r === undefined || r === 'unlimited') return { total: null, perTable: null };
  if (typeof r === 'number') return { total: r, perTable: null };
  return { total: r.total ?? null, perTable: r.perTable ?? null };
}
