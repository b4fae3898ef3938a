import { MODELS } from '../config/schema.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as z from 'zod';
import { UsageError } from '../errors.js';
import { COMPRESSIONS, type Compression } from './compression.js';
import { isPlainFileName } from './storage.js';

/**
 * The archive's manifest: what was backed up, from where, at which migration version, and the
 * checks a restore or `backup verify` runs (per table: rows, SHA-256 of the COPY text, the
 * order-independent digest of its rows, PostgreSQL's sqlDigest or, in older archives, RowTap's
 * hash, src/build/digest.ts; per stored file: size and SHA-256 of its bytes). The manifest
 * carries a SHA-256 of its own canonical JSON, so an edited manifest is caught too.
 *
 * Format 2 names the data files' compression (`compression`); format 1 had none and is gzip.
 * Format 3 adds the source's check and foreign-key constraints (`constraints`: which were NOT
 * VALID, and how many of the tenant's rows broke each), so a restore brings them back as they
 * were (src/copy/not-valid-constraints.ts). Format 4 adds `mac` to an encrypted archive's
 * manifest: an HMAC-SHA256 of its body with a key derived from the tenant's data key
 * (src/backup/manifest-mac.ts), so an edited manifest of an encrypted archive is refused even
 * when its self-checksum was recomputed. A plain archive's manifest has only the self-checksum,
 * which anyone can recompute: it catches damage, not forgery. This tenantctl writes format 4 and
 * reads all four. Format 5 adds `encryption.keyFile` to an encrypted archive's manifest: the
 * archive carries a copy of its data key wrapped by the master key in that file
 * (src/backup/archive-key.ts), so it restores without the catalog; `backup forget-key` erases the
 * file. Format 6 adds `sequences`: the last value each sequence of the placement had handed out,
 * read in the archive's snapshot, so a restore as a new tenant moves its sequences past them even
 * where no integer column shows it (`default 'R-' || nextval('ref_seq')`: the loaded rows hold
 * `R-1` … and the next insert would be given `R-1` again). This tenantctl writes format 6 and
 * reads all six. Every format's file names are confined to the archive's own folder.
 */
export const MANIFEST_FORMAT = 6;
const READS = [1, 2, 3, 4, 5, MANIFEST_FORMAT] as const;
export const MANIFEST_FILE = 'manifest.json';

const stored = z.strictObject({ bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

const manifestSchema = z.strictObject({
  format: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4), z.literal(5), z.literal(MANIFEST_FORMAT)]),
  /** From format 2 (format 1 is gzip). */
  compression: z.enum(COMPRESSIONS).optional(),
  id: z.string(),
  createdAt: z.string(),
  tool: z.strictObject({ name: z.literal('tenantctl'), version: z.string() }),
  tenant: z.strictObject({
    slug: z.string(),
    key: z.string(),
    name: z.string(),
    tier: z.string(),
    model: z.enum(MODELS),
    region: z.string(),
    shard: z.string(),
    database: z.string(),
    schema: z.string(),
    residency: z.string().nullable(),
  }),
  keyType: z.enum(['uuid', 'bigint', 'text']),
  migrations: z.strictObject({
    version: z.string().nullable(),
    applied: z.array(z.strictObject({ id: z.string(), checksum: z.string() })),
  }),
  tables: z.array(
    z.strictObject({
      table: z.string(),
      keyColumn: z.string(),
      columns: z.array(z.string()),
      file: z.string(),
      rows: z.number().int().nonnegative(),
      sha256: z.string(),
      hash: z.string(),
      stored,
      /** Format 2: where the COPY text was read (the pg_dump stream of the same snapshot, or a COPY). */
      from: z.enum(['copy', 'pg_dump']).optional(),
    }),
  ),
  /** Shared reference tables of the placement (tenantKey.shared): not copied, rebuilt by migrations. */
  sharedTables: z.array(z.string()).optional(),
  dump: z.strictObject({ file: z.string(), format: z.literal('custom'), pgDump: z.string(), server: z.string(), stored }).nullable(),
  encryption: z
    .strictObject({
      algorithm: z.literal('aes-256-gcm'),
      keyId: z.string(),
      /** From format 5: the archive's copy of its data key, wrapped by the master key. */
      keyFile: z.string().optional(),
    })
    .nullable(),
  /** From format 3: the tenant tables' check and foreign-key constraints at the source (ConstraintState). */
  constraints: z
    .array(
      z.strictObject({
        table: z.string(),
        name: z.string(),
        type: z.enum(['check', 'foreign key']),
        valid: z.boolean(),
        violatingRows: z.number().int().nonnegative().optional(),
      }),
    )
    .optional(),
  /** From format 6: sequence name → the last value it had handed out at the snapshot (ascending sequences the role may read). */
  sequences: z.record(z.string(), z.string().regex(/^-?\d+$/)).optional(),
  /** From format 4, encrypted archives only: HMAC-SHA256 of manifestBody with the data key's manifest key. */
  mac: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  checksum: z.string(),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestTable = Manifest['tables'][number];

/** The data files' compression: format 1 archives are gzip. */
export function compressionOf(m: Pick<Manifest, 'compression'>): Compression {
  return m.compression ?? 'gzip';
}

/** SHA-256 of the manifest's JSON without its own checksum field, keys in a fixed order. */
export function manifestChecksum(m: Omit<Manifest, 'checksum'> & { checksum?: string }): string {
  const { checksum: _c, ...rest } = m;
  return createHash('sha256').update(canonical(rest)).digest('hex');
}

/** What the MAC of an encrypted archive covers: the canonical JSON without checksum and mac. */
export function manifestBody(m: Omit<Manifest, 'checksum' | 'mac'> & { checksum?: string; mac?: string }): string {
  const { checksum: _c, mac: _m, ...rest } = m;
  return canonical(rest);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function sealManifest(m: Omit<Manifest, 'checksum'>): Manifest {
  return { ...m, checksum: manifestChecksum(m) };
}

/**
 * Parse and check a manifest's text: JSON, a known format version, the shape, its checksum.
 * Every failure is a UsageError (exit 2) naming the archive.
 */
export function parseManifest(text: string, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json is not valid JSON (truncated or altered)`,
      'use another backup (tenantctl backup list)',
    );
  }
  const format = (raw as { format?: unknown })?.format;
  if (!(READS as readonly unknown[]).includes(format)) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest format ${JSON.stringify(format)} is unknown to this tenantctl (it reads formats ${READS.slice(0, -1).join(', ')} and ${READS.at(-1)})`,
      'use the tenantctl version that wrote the backup, or a newer one',
    );
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json is malformed at ${first.path.join('.') || '(root)'}: ${first.message}`,
      'use another backup (tenantctl backup list)',
    );
  }
  if ((parsed.data.format === 1) !== (parsed.data.compression === undefined)) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json is malformed at compression: format ${parsed.data.format} ${parsed.data.format === 1 ? 'has no compression field' : 'names its compression'}`,
      'use another backup (tenantctl backup list)',
    );
  }
  if (parsed.data.format >= 3 !== (parsed.data.constraints !== undefined)) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json is malformed at constraints: format ${parsed.data.format} ${parsed.data.format >= 3 ? 'records its constraints' : 'has no constraints field'}`,
      'use another backup (tenantctl backup list)',
    );
  }
  const encrypted = parsed.data.encryption !== null;
  if ((parsed.data.format >= 4 && encrypted) !== (parsed.data.mac !== undefined)) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json is malformed at mac: ${encrypted ? `an encrypted format ${parsed.data.format} manifest` : 'a plain manifest'} ${parsed.data.mac === undefined ? 'has no mac' : 'has a mac'}`,
      'use another backup (tenantctl backup list)',
    );
  }
  if (encrypted && parsed.data.format >= 5 !== (parsed.data.encryption?.keyFile !== undefined)) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json is malformed at encryption.keyFile: an encrypted format ${parsed.data.format} manifest ${parsed.data.format >= 5 ? 'names the file of its data key' : 'has no key file'}`,
      'use another backup (tenantctl backup list)',
    );
  }
  assertConfined(parsed.data, where);
  if (manifestChecksum(parsed.data) !== parsed.data.checksum) {
    throw new UsageError(
      'BAD_ARCHIVE',
      `${where}: manifest.json was altered (its checksum does not match)`,
      'use another backup (tenantctl backup list)',
    );
  }
  return parsed.data;
}

/** Every file the manifest names must be a plain name in the archive's own folder. */
function assertConfined(m: Manifest, where: string): void {
  const entries = m.tables.map((t, i) => ({ at: `tables[${i}].file (${t.table})`, file: t.file }));
  if (m.dump) entries.push({ at: 'dump.file', file: m.dump.file });
  if (m.encryption?.keyFile) entries.push({ at: 'encryption.keyFile', file: m.encryption.keyFile });
  for (const e of entries) {
    if (!isPlainFileName(e.file))
      throw new UsageError(
        'BAD_ARCHIVE',
        `${where}: manifest entry ${e.at} names ${JSON.stringify(e.file)}, which is not a file of the archive's own folder (a path, .. or absolute)`,
        'the manifest was forged or damaged; use another backup (tenantctl backup list)',
      );
  }
}

let version: string | undefined;
/** This tenantctl's version, from package.json (two folders up from src/backup and dist/cli alike). */
export function toolVersion(): string {
  if (!version) {
    try {
      version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      version = 'unknown';
    }
  }
  return version;
}
