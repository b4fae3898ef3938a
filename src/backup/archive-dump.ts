import { pipeline } from 'node:stream/promises';
import type { Transform } from 'node:stream';
import type pg from 'pg';
import type { Shard } from '../config/types.js';
import type { Manifest } from './manifest.js';
import type { ArchiveWriter } from './storage.js';
import type { Compression } from './compression.js';
import type { TableFile } from './table-file.js';
import { ByteTap } from './byte-tap.js';
import { encryptStream } from './crypto.js';
import { PgDumpReader } from './pg-dump-reader.js';
import { dumpTableSinks, type DumpTableSinks } from './dump-tables.js';
import { assertPgDumpVersion, runPgDump } from './pg-dump.js';

export interface ArchiveDump {
  /** Settles when pg_dump ended and its file is stored: the manifest's `dump` entry. */
  job: Promise<Manifest['dump']>;
  /** The tables whose files are written from pg_dump's stream (null: every table is COPYed). */
  fromDump: DumpTableSinks | null;
}

export interface ArchiveDumpInput {
  shard: Shard;
  target: { database: string; schema?: string };
  pgDump: { major: number; text: string };
  schema: string;
  files: TableFile[];
  writer: ArchiveWriter;
  dataKey: { key: Buffer } | null;
  compression: Compression;
  /** Ends pg_dump at once (Ctrl-C, SIGTERM). */
  signal?: AbortSignal;
}

/**
 * The archive's `pg_dump -Fc` (schema and database tenants), started from the snapshot of `c`,
 * the backup's repeatable-read transaction: pg_dump reads the same snapshot while the caller's
 * COPYs run on `c`. Resolves once pg_dump's table of contents was read, saying which tables'
 * files come from its stream; a pg_dump that fails before that fails here.
 */
export async function startArchiveDump(c: pg.ClientBase, o: ArchiveDumpInput): Promise<ArchiveDump> {
  const v = (
    await c.query<{ num: string; text: string; tz: string; ds: string; ist: string; efd: number }>(
      `select current_setting('server_version_num') as num, current_setting('server_version') as text,
              current_setting('TimeZone') as tz, current_setting('DateStyle') as ds,
              current_setting('IntervalStyle') as ist, current_setting('extra_float_digits')::int as efd`,
    )
  ).rows[0];
  assertPgDumpVersion(o.pgDump, Number(v.num), v.text);
  // The tables' files come from pg_dump's stream when its COPY text is byte for byte this
  // session's: pg_dump sets DateStyle ISO, IntervalStyle postgres and extra_float_digits 3
  // (from PostgreSQL 12 any positive value prints floats the same, shortest exact); it gets
  // this session's time zone and UTF8, as node-postgres uses.
  const sameText = Number(v.num) >= 120000 && v.ds.startsWith('ISO') && v.ist === 'postgres' && v.efd > 0;
  const snapshot = (await c.query<{ s: string }>('select pg_export_snapshot() as s')).rows[0].s;
  const file = o.dataKey ? 'dump.pgc.enc' : 'dump.pgc';
  const tap = new ByteTap();
  let onToc!: (s: DumpTableSinks | null) => void;
  const toc = new Promise<DumpTableSinks | null>((resolve) => {
    onToc = resolve;
  });
  const reader = new PgDumpReader((h) => {
    const sinks = sameText && !('unsupported' in h) ? dumpTableSinks(h, o.schema, o.files) : null;
    onToc(sinks);
    return sinks?.sinks ?? null;
  });
  const encrypt: Transform[] = o.dataKey ? [encryptStream(o.dataKey.key)] : [];
  const job = (async () => {
    const done = pipeline([reader, ...encrypt, tap, o.writer.write(file)] as never);
    try {
      await Promise.all([
        runPgDump(
          {
            shard: o.shard,
            ...o.target,
            snapshot,
            compress: o.compression !== 'none',
            ...(sameText ? { timeZone: v.tz, utf8: true } : {}),
            signal: o.signal,
          },
          reader,
        ),
        done,
      ]);
    } catch (err) {
      onToc(null); // no effect once the table of contents was read
      (await toc)?.destroy(err as Error);
      throw err;
    }
    return { file, format: 'custom' as const, pgDump: o.pgDump.text, server: v.text, stored: tap.stored() };
  })();
  // Keep an early failure from being unhandled while the copies run.
  job.catch(() => undefined);
  // The table of contents comes first; a pg_dump that fails before it fails the backup.
  const fromDump = await Promise.race([toc, job.then(() => toc)]);
  return { job, fromDump };
}
