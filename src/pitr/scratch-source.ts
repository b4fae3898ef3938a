import type { Readable } from 'node:stream';
import pg from 'pg';
import type { TenantRow } from '../catalog/tables.js';
import { tenantIdentity } from '../catalog/tenant-doc.js';
import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import { readApplied, versionOf } from '../migrate/tracking.js';
import { drivers } from '../placement/drivers.js';
import { sharedTablesNotCopied } from '../placement/pool/shared-tables.js';
import { refuseTablesLeftBehind } from '../placement/tables-left-behind.js';
import { copyTables, type CopyTable } from '../copy/tables.js';
import { copyOutSql } from '../copy/copy-sql.js';
import { copyOut } from '../copy/streams.js';
import { sqlDigest } from '../copy/sql-digest.js';
import { sourceConstraints } from '../copy/not-valid-constraints.js';
import type { OpenArchive } from '../backup/archive.js';
import { MANIFEST_FORMAT, toolVersion, type Manifest } from '../backup/manifest.js';
import { storageFor } from '../backup/regions.js';

/** The tenant in the paused scratch cluster, as a source the backup restore loads from. */
export interface ScratchSource {
  /** What restoreArchive loads: a manifest made from the scratch cluster, its tables' rows streamed from it. */
  archive: OpenArchive;
  tables: number;
  /** End the connection to the scratch cluster (before it is stopped). */
  close(): Promise<void>;
}

/**
 * Open the tenant in the scratch cluster (`url`: its database there) as a live archive: its
 * tables, columns, migrations and constraints read in a repeatable-read transaction, and each
 * table's rows streamed by COPY from that transaction when the load asks for them: no interim
 * archive, each row sent once. Every table's row count and digest (sqlDigest, inside PostgreSQL:
 * what the restore's verification compares the loaded rows with) are taken meanwhile on two
 * connections (`digested`), while the restore builds the placement. The scratch cluster is paused
 * at the target, so every transaction on it sees the same rows. `drained` is called once every
 * table has been streamed (the scratch cluster is no longer needed).
 */
export async function openScratchSource(
  config: Config,
  t: TenantRow,
  url: string,
  id: string,
  drained: () => void,
): Promise<ScratchSource> {
  const clients: pg.Client[] = [];
  const close = async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  };
  try {
    const [c, d] = await Promise.all([readOnly(url, clients), readOnly(url, clients)]);
    const scope = { model: t.model, schema: t.schema_name, key: t.key };
    const tables = await copyTables(c, t.schema_name, config);
    if (tables.length === 0)
      throw new TenantctlError('PITR_FAILED', `no tenant-scoped tables in ${t.database_name}.${t.schema_name} at that time`);
    await drivers[t.model].assertCopyAllowed(c, t.schema_name, config, 'read');
    const manifest = await sourceManifest(c, config, t, id, tables);
    const digested = digestAll([d, c], tables, manifest.tables, scope, config);
    digested.catch(() => undefined); // awaited by the load; a failure before it is the restore's
    const byName = new Map(tables.map((x) => [x.table, x]));
    const left = new Set(byName.keys());
    const tableText = (e: { table: string }): Readable => {
      const out = copyOut(c, copyOutSql(byName.get(e.table) as CopyTable, scope, config));
      out.once('end', () => {
        left.delete(e.table);
        if (left.size === 0) drained();
      });
      return out;
    };
    return {
      archive: { id, region: t.region, storage: storageFor(config, t.region), manifest, live: { tableText, digested } },
      tables: tables.length,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A connection to the scratch cluster in a read-only repeatable-read transaction. */
async function readOnly(url: string, clients: pg.Client[]): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: 'tenantctl restore --at' });
  // The scratch cluster is stopped when the load is done: the connection's end is no error.
  c.on('error', () => undefined);
  clients.push(c);
  await c.connect();
  await c.query('begin isolation level repeatable read read only');
  return c;
}

/** Each table's count and digest into its manifest entry, the tables shared out among the connections. */
async function digestAll(
  cs: pg.Client[],
  tables: CopyTable[],
  entries: Manifest['tables'],
  scope: { model: TenantRow['model']; schema: string; key: string },
  config: Config,
): Promise<void> {
  let next = 0;
  await Promise.all(
    cs.map(async (c) => {
      for (let i = next++; i < tables.length; i = next++) {
        const d = await sqlDigest(c, tables[i], scope, config);
        entries[i].rows = d.rows;
        entries[i].hash = d.hash;
      }
    }),
  );
}

/**
 * The manifest a backup of the tenant would have (in the caller's transaction on the scratch
 * cluster), without stored files; each table's rows and hash are filled in by digestAll.
 */
async function sourceManifest(c: pg.Client, config: Config, t: TenantRow, id: string, tables: CopyTable[]): Promise<Manifest> {
  const scope = { model: t.model, schema: t.schema_name, key: t.key };
  const applied = (await readApplied(c, [t.schema_name])).map((r) => ({ id: r.name, checksum: r.checksum }));
  const sharedTables = await sharedTablesNotCopied(c, t.schema_name, config, `restore --at of ${t.slug}`);
  await refuseTablesLeftBehind(c, t.schema_name, config, t.model, `restore --at of ${t.slug}`);
  const entries: Manifest['tables'] = tables.map(({ table, keyColumn, columns }) => ({
    table,
    keyColumn,
    columns,
    file: '',
    rows: 0,
    sha256: '',
    hash: '',
    stored: { bytes: 0, sha256: '' },
  }));
  return {
    format: MANIFEST_FORMAT,
    compression: 'none',
    id,
    createdAt: new Date().toISOString(),
    tool: { name: 'tenantctl', version: toolVersion() },
    tenant: tenantIdentity(t),
    keyType: config.tenantKey.type,
    migrations: { version: versionOf(applied.map((a) => a.id)), applied },
    tables: entries,
    sharedTables,
    dump: null,
    encryption: null,
    constraints: await sourceConstraints(c, scope, tables, config.tenantKey.type),
    checksum: '',
  };
}
