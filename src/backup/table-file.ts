import type { Transform, Writable } from 'node:stream';
import type { CopyTable } from '../copy/tables.js';
import { RowTap } from '../copy/row-tap.js';
import { ByteTap } from './byte-tap.js';
import { Batch, compressStream, compressedSuffix, type Compression } from './compression.js';
import { encryptStream } from './crypto.js';
import type { ManifestTable } from './manifest.js';
import type { ArchiveWriter } from './storage.js';

export interface TableFileOptions {
  compression: Compression;
  dataKey: { key: Buffer } | null;
  writer: ArchiveWriter;
  /** Stored bytes as they are written (progress). */
  onBytes?: (n: number) => void;
}

/**
 * One table's data file in an archive: the COPY text measured (rows, SHA-256), gathered
 * into pieces, compressed, encrypted when the region says so, and written. Whatever the text
 * comes from (a COPY, or a table's block of the pg_dump stream) goes through `chain()`.
 */
export class TableFile {
  readonly file: string;
  readonly rowTap: RowTap;
  private readonly stored = new ByteTap();

  constructor(
    readonly table: CopyTable,
    index: number,
    private readonly o: TableFileOptions,
  ) {
    this.file = `${String(index + 1).padStart(3, '0')}-${table.table}.copy${compressedSuffix(o.compression)}${o.dataKey ? '.enc' : ''}`;
    // Rows and SHA-256 of the text; the rows' digest is taken inside PostgreSQL (entry's `hash`).
    this.rowTap = new RowTap({ keyIndex: table.keyIndex, rowHash: false });
    if (o.onBytes) this.stored.onBytes = o.onBytes;
  }

  /** The streams from the COPY text to the stored file, for `pipeline([source, ...chain()])`. */
  chain(): [Transform, ...(Transform | Writable)[]] {
    return [
      this.rowTap,
      new Batch(),
      compressStream(this.o.compression),
      ...(this.o.dataKey ? [encryptStream(this.o.dataKey.key)] : []),
      this.stored,
      this.o.writer.write(this.file),
    ];
  }

  /** `hash`: the rows' digest in the backup's snapshot (sqlDigest, src/build/digest.ts). */
  entry(from: 'copy' | 'pg_dump', hash: string): ManifestTable {
    const d = this.rowTap.digest();
    const t = this.table;
    const { file } = this;
    return {
      table: t.table,
      keyColumn: t.keyColumn,
      columns: t.columns,
      file,
      rows: d.rows,
      sha256: d.sha256,
      hash,
      stored: this.stored.stored(),
      from,
    };
  }
}
