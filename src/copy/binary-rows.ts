import { Transform, type TransformCallback } from 'node:stream';

/** COPY BINARY's header: the 11-byte signature, 32-bit flags, then a 32-bit length of an extension area. */
const HEADER = 19;

/**
 * A pass-through over PostgreSQL's COPY BINARY format that counts the rows and bytes (what a
 * move's copy reports; the rows themselves are proved by reading both sides back). Each row is a
 * 16-bit field count (-1: the trailer), then per field a 32-bit length (-1: NULL) and that many
 * bytes; only those lengths are read, the bytes go on as they came, chunk for chunk.
 */
export class BinaryRowCount extends Transform {
  private rows = 0;
  private bytes = 0;
  /** Bytes of the stream read so far that the parser has not passed yet (a header, count or length cut by a chunk boundary). */
  private carry: Buffer = Buffer.alloc(0);
  /** Where the parser is: the header, a row's field count, a field's length, or inside a field's bytes. */
  private state: 'header' | 'row' | 'field' | 'skip' | 'end' = 'header';
  private fieldsLeft = 0;
  private skipLeft = 0;

  get rowCount(): number {
    return this.rows;
  }

  digest(): { rows: number; bytes: number } {
    return { rows: this.rows, bytes: this.bytes };
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    let p = 0;
    for (;;) {
      if (this.state === 'skip') {
        const n = Math.min(this.skipLeft, buf.length - p);
        p += n;
        this.skipLeft -= n;
        if (this.skipLeft > 0) break;
        this.state = this.fieldsLeft > 0 ? 'field' : 'row';
      } else if (this.state === 'header') {
        if (buf.length - p < HEADER) break;
        this.skipLeft = buf.readUInt32BE(p + 15);
        p += HEADER;
        this.fieldsLeft = 0;
        this.state = 'skip';
      } else if (this.state === 'row') {
        if (buf.length - p < 2) break;
        const n = buf.readInt16BE(p);
        p += 2;
        if (n < 0) {
          this.state = 'end';
          continue;
        }
        this.rows++;
        this.fieldsLeft = n;
        this.state = n > 0 ? 'field' : 'row';
      } else if (this.state === 'field') {
        if (buf.length - p < 4) break;
        const len = buf.readInt32BE(p);
        p += 4;
        this.fieldsLeft--;
        this.skipLeft = Math.max(len, 0);
        this.state = 'skip';
      } else {
        break;
      }
    }
    this.carry = p < buf.length ? Buffer.from(buf.subarray(p)) : Buffer.alloc(0);
    this.push(chunk);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    cb(this.state === 'end' && this.carry.length === 0 ? undefined : new Error('COPY BINARY data ends in the middle of a row'));
  }
}
