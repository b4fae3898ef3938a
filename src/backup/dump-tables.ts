import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInflate } from 'node:zlib';
import { CopyTrailer } from './copy-trailer.js';
import { ZLIB_CHUNK } from './compression.js';
import { copyColumns, type DataSink, type DumpHeader } from './pg-dump-reader.js';
import type { TableFile } from './table-file.js';

export interface DumpTableSinks {
  sinks: Map<number, DataSink>;
  /** The tables whose data file is written from the dump (the others are copied with COPY). */
  tables: Set<string>;
  /** After pg_dump ended: every sink's pipeline settled (a failed one, or one pg_dump sent no data for, rejects). */
  all(): Promise<void>;
  /** Stop them all (pg_dump failed). */
  destroy(err: Error): void;
}

/**
 * Match the dump's TABLE DATA entries to the archive's table files: same schema and table, and
 * the COPY statement's columns exactly the file's (stored columns in attribute order, as COPY out
 * would send them). Each match gets a sink: inflate (when the dump is compressed), pg_dump's
 * end-of-data marker removed, then the file's chain.
 */
export function dumpTableSinks(h: DumpHeader, schema: string, files: TableFile[]): DumpTableSinks {
  const byName = new Map(files.map((f) => [f.table.table, f]));
  const sinks = new Map<number, DataSink>();
  const tables = new Set<string>();
  const heads: { head: PassThrough; table: string }[] = [];
  const jobs: Promise<unknown>[] = [];
  for (const e of h.entries) {
    if (e.desc !== 'TABLE DATA' || e.namespace !== schema) continue;
    const f = byName.get(e.tag);
    const cols = copyColumns(e.copyStmt);
    if (!f || !cols || cols.join('\u0000') !== f.table.columns.join('\u0000') || tables.has(e.tag)) continue;
    const head = h.compression === 0 ? new PassThrough() : (createInflate({ chunkSize: ZLIB_CHUNK }) as unknown as PassThrough);
    const done = pipeline([head, new CopyTrailer(), ...f.chain()] as never);
    done.catch(() => undefined);
    heads.push({ head, table: e.tag });
    jobs.push(done);
    sinks.set(e.dumpId, { stream: head, done });
    tables.add(e.tag);
  }
  return {
    sinks,
    tables,
    all: async () => {
      for (const { head, table } of heads)
        if (!head.writableEnded)
          head.destroy(new Error(`pg_dump's output had no data for table ${table}, which its table of contents lists`));
      await Promise.all(jobs);
    },
    destroy: (err) => {
      for (const { head } of heads) head.destroy(err);
    },
  };
}
