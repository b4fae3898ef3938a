import { pipeline } from 'node:stream/promises';
import { tenantIdentity } from '../catalog/tenant-doc.js';
import { refuseLargeObjects } from '../placement/large-objects.js';
import type { TenantRow } from '../catalog/tables.js';
import { recordEvent } from '../catalog/events.js';
import type { TenantResult } from '../fanout/result.js';
import { TenantctlError } from '../errors.js';
import { readApplied, versionOf } from '../migrate/tracking.js';
import { runTenantOperation, type OperationRun } from '../operations/tenant-operation.js';
import { InterruptedError, isInterrupt, stopIfInterrupted } from '../operations/interrupt.js';
import { copyTables } from '../copy/tables.js';
import { sourceConstraints } from '../copy/not-valid-constraints.js';
import { copyOutSql } from '../copy/copy-sql.js';
import { copyOut } from '../copy/streams.js';
import { sqlDigest } from '../copy/sql-digest.js';
import { pgDumpTarget } from '../placement/placement.js';
import { sharedTablesNotCopied } from '../placement/pool/shared-tables.js';
import { refuseTablesLeftBehind } from '../placement/tables-left-behind.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, sealManifest, toolVersion, type Manifest } from './manifest.js';
import { sequenceValues } from '../copy/sequences.js';
import { manifestMac } from './manifest-mac.js';
import { newBackupId, type ArchiveWriter } from './storage.js';
import { backupCompression, encryptsBackups, storageFor } from './regions.js';
import { tenantDataKey } from './keys.js';
import { masterKey, wrapKey } from './crypto.js';
import { ARCHIVE_KEY_FILE, writeArchiveKey } from './archive-key.js';
import { TableFile } from './table-file.js';
import { startArchiveDump, type ArchiveDump } from './archive-dump.js';
import { orphanDefaultAclFix, orphanDefaultAcls, orphanDefaultAclText } from '../placement/orphan-default-acls.js';
import { pgDumpMajor } from './pg-dump.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { drivers } from '../placement/drivers.js';

import type { BackupDeps } from './types.js';
export type { BackupDeps } from './types.js';

export interface BackupResult extends TenantResult {
  backup?: string;
  rows?: number;
  bytes?: number;
  tables?: number;
  /** Shared reference tables (tenantKey.shared) the archive leaves out by design. */
  sharedNotCopied?: string[];
  encrypted?: boolean;
}

/**
 * Back up one tenant under its operation lock (the tenant-operation engine): every tenant-scoped
 * table's rows in the tenant's scope (pool: its key; schema and database: everything), from ONE
 * repeatable-read snapshot, streamed as COPY text through gzip (and AES-256-GCM when the region
 * encrypts) into the region's storage; schema and database tenants also get a pg_dump -Fc from
 * the same snapshot. The archive is published only when complete; on a failure or Ctrl-C the
 * partial one is removed. Never throws for a failure at the shard: the result says what happened.
 * `lockHeld`: the caller holds the tenant's lock (delete's final backup, restore's safety backup).
 *
 * @example
 *   const r = await backupTenant(deps, 'acme');
 *   r.backup // 'acme.20261126T225317123Z'
 */
export async function backupTenant(deps: BackupDeps, slug: string, o: { held?: TenantRow; id?: string } = {}): Promise<BackupResult> {
  // The engine runs the one sweep first under the tenant's lock (not for a nested backup: its
  // caller swept, and its own running record must not be taken for a killed one).
  return runTenantOperation(deps, { kind: 'backup', slug, held: o.held, tolerateStuck: true }, (run) => backupBody(deps, run, o.id));
}

/**
 * backupTenant for a caller that already holds the tenant's lock and its row (delete's final
 * backup, restore's safety backup). `id`: the archive's id, when the caller recorded it before
 * (restore --at's interim archive, so the sweep can remove it after a kill).
 */
export function backupLocked(deps: BackupDeps, t: TenantRow, id?: string): Promise<BackupResult> {
  return backupTenant(deps, t.slug, { held: t, id });
}

async function backupBody(deps: BackupDeps, run: OperationRun, givenId?: string): Promise<BackupResult> {
  const started = Date.now();
  const t = run.tenant!;
  const base = { tenant: t.slug, model: t.model, region: t.region, shard: t.shard };
  if (t.status !== 'active' && t.status !== 'suspended') {
    return { ...base, status: 'skipped', reason: `tenant is ${t.status}` };
  }
  const storage = storageFor(deps.config, t.region);
  const id = givenId ?? newBackupId(t.slug);
  const op = await run.record({ backup: id, storage: storage.location });
  let writer: ArchiveWriter | undefined;
  const warnings = [...run.swept];
  try {
    const dataKey = encryptsBackups(deps.config, t.region) ? await tenantDataKey(deps.db, t.slug) : null;
    writer = await storage.begin(id);
    await run.step('copy', { rows: 0, bytes: 0 });
    const manifest = await writeArchive(
      deps,
      t,
      id,
      writer,
      dataKey,
      run.signal,
      (p) => {
        deps.onProgress?.({ tenant: t.slug, ...p });
        void op.heartbeat({ rows: p.rows, bytes: p.bytes }).catch(() => undefined);
      },
      (w) => warnings.push(w),
    );
    if (dataKey) await writeArchiveKey(writer, { keyId: dataKey.keyId, slug: t.slug, wrapped: wrapKey(masterKey(), dataKey.key) });
    await run.step('written');
    await writer.writeText(MANIFEST_FILE, `${JSON.stringify(manifest, null, 2)}\n`);
    await writer.commit();
    const rows = manifest.tables.reduce((n, x) => n + x.rows, 0);
    const bytes = manifest.tables.reduce((n, x) => n + x.stored.bytes, 0) + (manifest.dump?.stored.bytes ?? 0);
    await op.finish('succeeded', { rows, bytes });
    await recordEvent(deps.db, {
      command: deps.command,
      action: 'backed up',
      result: 'ok',
      tenant: t.slug,
      details: { backup: id, storage: storage.location, rows, bytes, encrypted: Boolean(dataKey), version: manifest.migrations.version },
    });
    return {
      ...base,
      status: 'succeeded',
      backup: id,
      rows,
      bytes,
      tables: manifest.tables.length,
      sharedNotCopied: manifest.sharedTables ?? [],
      encrypted: Boolean(dataKey),
      ...(warnings.length ? { warnings } : {}),
      durationMs: Date.now() - started,
    };
  } catch (err) {
    // Nothing of an unpublished archive is kept (a Ctrl-C included).
    await writer?.abort().catch(() => undefined);
    if (isInterrupt(err)) throw new InterruptedError(`the partial archive ${id} was removed; ${t.slug} has no new backup`);
    const error = await run.fail(err, 'BACKUP_FAILED', { backup: id });
    return { ...base, status: 'failed', durationMs: Date.now() - started, error };
  }
}

type Progress = (p: { table: string; rows: number; bytes: number }) => void;

/**
 * The archive's files from ONE repeatable-read snapshot (the archive is one moment of the
 * tenant): every table's rows (from pg_dump's stream where it has them, else a COPY), the
 * pg_dump file of a schema or database tenant, each table's digest; returns the sealed manifest.
 */
async function writeArchive(
  deps: BackupDeps,
  t: TenantRow,
  id: string,
  writer: ArchiveWriter,
  dataKey: { keyId: string; key: Buffer } | null,
  signal: AbortSignal,
  progress: Progress,
  warn: (w: string) => void,
): Promise<Manifest> {
  const { config, fleet } = deps;
  const dumpTarget = pgDumpTarget({ model: t.model, database: t.database_name, schema: t.schema_name });
  const pgDump = dumpTarget ? await pgDumpMajor() : null;
  const compression = backupCompression(config, t.region);
  return fleet.withClient(t.shard, t.database_name, async (c) => {
    await c.query('begin isolation level repeatable read read only');
    try {
      // A default-privileges entry left pointing at a dropped schema (a tenant's session can make
      // one) fails pg_dump of the whole database: the tables are read with COPY then, as for a
      // pool tenant (restores read only those), and the backup says so, naming the entry.
      const orphans = dumpTarget ? await orphanDefaultAcls(c) : [];
      if (orphans.length)
        warn(
          `no pg_dump file in this backup: pg_dump cannot read database ${t.database_name} while ${orphanDefaultAclText(orphans)} holds default privileges for a schema that no longer exists; its tables were read with COPY (what a restore reads). ${orphanDefaultAclFix(orphans)}`,
        );
      const target = orphans.length ? null : dumpTarget;
      const applied = (await readApplied(c, [t.schema_name])).map((r) => ({ id: r.name, checksum: r.checksum }));
      const tables = await copyTables(c, t.schema_name, config);
      const sharedTables = await sharedTablesNotCopied(c, t.schema_name, config, `backup of ${t.slug}`);
      await refuseTablesLeftBehind(c, t.schema_name, config, t.model, `backup of ${t.slug}`);
      if (tables.length === 0) throw new TenantctlError('BACKUP_FAILED', `no tenant-scoped tables in ${t.database_name}.${t.schema_name}`);
      await drivers[t.model].assertCopyAllowed(c, t.schema_name, config, 'read');
      await refuseLargeObjects(c, { slug: t.slug, model: t.model, shard: t.shard, database: t.database_name }, 'backup', 'LARGE_OBJECTS');
      let bytes = 0;
      const files: TableFile[] = tables.map(
        (tb, i) =>
          new TableFile(tb, i, {
            compression,
            dataKey,
            writer,
            onBytes: (n) => {
              bytes += n;
              progress({ table: tb.table, rows: files.reduce((r, f) => r + f.rowTap.rowCount, 0), bytes });
            },
          }),
      );
      const dump: ArchiveDump =
        pgDump && target
          ? await withDumpSlot(fleet, t.shard, () =>
              startArchiveDump(c, {
                shard: fleet.shard(t.shard),
                target,
                pgDump,
                schema: t.schema_name,
                files,
                writer,
                dataKey,
                compression,
                signal,
              }),
            )
          : { job: Promise.resolve(null), fromDump: null };
      const scope = { model: t.model, schema: t.schema_name, key: t.key };
      const digests = await copyAndDigest(c, deps, scope, files, dump, signal);
      const body: Omit<Manifest, 'checksum' | 'mac'> = {
        format: MANIFEST_FORMAT,
        compression,
        id,
        createdAt: new Date().toISOString(),
        tool: { name: 'tenantctl', version: toolVersion() },
        tenant: manifestTenant(t),
        keyType: config.tenantKey.type,
        migrations: { version: versionOf(applied.map((a) => a.id)), applied },
        tables: files.map((f) => f.entry(dump.fromDump?.tables.has(f.table.table) ? 'pg_dump' : 'copy', digests.get(f.table.table)!)),
        sharedTables,
        dump: await dump.job,
        encryption: dataKey ? { algorithm: 'aes-256-gcm', keyId: dataKey.keyId, keyFile: ARCHIVE_KEY_FILE } : null,
        // In the same snapshot: which constraints are NOT VALID and how many of these rows break them.
        constraints: await sourceConstraints(c, scope, tables, config.tenantKey.type),
        // Values a column does not show (a text default built from nextval): a restore goes past them (format 6).
        sequences: Object.fromEntries(await sequenceValues(c, t.schema_name)),
      };
      // An encrypted archive's manifest is authenticated with the tenant's data key (format 4).
      return sealManifest(dataKey ? { ...body, mac: manifestMac(body, dataKey.key) } : body);
    } finally {
      await c.query('rollback').catch(() => undefined);
    }
  });
}

/**
 * COPY the tables pg_dump's stream does not carry, then digest every table in the snapshot (the
 * one digest, src/build/digest.ts: what a restore checks its load against) while pg_dump may
 * still be sending; wait for the dump, and check each file's row count against its digest's
 * (also the check that each table's stream was read whole). Returns table → digest.
 */
async function copyAndDigest(
  c: ShardClient,
  deps: BackupDeps,
  scope: { model: TenantRow['model']; schema: string; key: string },
  files: TableFile[],
  dump: ArchiveDump,
  signal: AbortSignal,
): Promise<Map<string, string>> {
  const { fromDump } = dump;
  for (const f of files) {
    if (fromDump?.tables.has(f.table.table)) continue;
    // Ctrl-C: between tables (a table's COPY is not cut mid-stream; the archive is dropped whole).
    stopIfInterrupted(signal, 'stopped between tables');
    await pipeline([copyOut(c, copyOutSql(f.table, scope, deps.config)), ...f.chain()] as never);
  }
  stopIfInterrupted(signal, 'stopped after the last table');
  const digests = new Map<string, string>();
  for (const f of files) digests.set(f.table.table, (await sqlDigest(c, f.table, scope, deps.config)).hash);
  await dump.job;
  await fromDump?.all();
  for (const f of files) {
    const n = Number(digests.get(f.table.table)!.split(':')[0]);
    if (f.rowTap.rowCount !== n) {
      const from = fromDump?.tables.has(f.table.table) ? "pg_dump's stream" : 'the COPY';
      throw new TenantctlError('BACKUP_FAILED', `${f.table.table}: ${f.rowTap.rowCount} rows read from ${from}, ${n} in the snapshot`);
    }
  }
  return digests;
}

/** The manifest's copy of the tenant's catalog row (what a restore without the catalog needs). */
function manifestTenant(t: TenantRow): Manifest['tenant'] {
  return tenantIdentity(t);
}

/**
 * pg_dump's own connection counted in the shard's budget for as long as pg_dump runs: the
 * backup's fan-out runs half the budget's tenants at once, each holding one pooled connection and
 * this slot, so idle pooled connections are closed to make room rather than exceeding it.
 */
async function withDumpSlot(fleet: BackupDeps['fleet'], shard: string, start: () => Promise<ArchiveDump>): Promise<ArchiveDump> {
  const giveBack = await fleet.connections(shard).reserveSlot();
  try {
    const dump = await start();
    dump.job.then(giveBack, giveBack);
    return dump;
  } catch (err) {
    giveBack();
    throw err;
  }
}
