import { Transform, type TransformCallback } from 'node:stream';

/** What pg_dump writes after each table's COPY text (`\.` and three newlines). */
const TRAILER = Buffer.from('\\.\n\n\n');

/**
 * Passes a table's data from a pg_dump stream on without pg_dump's end-of-data trailer, so it is
 * byte for byte what `COPY … TO STDOUT` sends. A block that does not end with it is an error.
 */
export class CopyTrailer extends Transform {
  private tail: Buffer = Buffer.alloc(0);

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    const all = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    const keep = Math.min(TRAILER.length, all.length);
    this.tail = Buffer.from(all.subarray(all.length - keep));
    cb(null, all.length > keep ? all.subarray(0, all.length - keep) : undefined);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.tail.equals(TRAILER)) return cb(new Error("a table's data in the pg_dump stream does not end with COPY's end marker"));
    cb();
  }
}
