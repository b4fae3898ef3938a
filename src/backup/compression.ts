import { constants as zc, createBrotliCompress, createBrotliDecompress, createGunzip, createGzip } from 'node:zlib';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { BACKUP_COMPRESSIONS } from '../config/schema.js';

/**
 * How an archive's data files are compressed. Brotli at quality 1 is the default: on COPY text it
 * takes about half the CPU of gzip at level 1 for a slightly smaller file (measured on this
 * project's bench tenant: 222 MB of COPY text, gzip -1 2.35 s of CPU and 21.8%, brotli q1 1.0 s and
 * 20.3%), and the CPU is what a backup competes with the shard for. Both ship with Node (no
 * native add-on), stream, and have standard command-line decoders (`brotli -d`, `gunzip`), so an
 * archive stays readable without tenantctl. `none` is for storage that compresses by itself.
 * Format-1 manifests (before the choice existed) are always gzip.
 */
export const COMPRESSIONS = BACKUP_COMPRESSIONS;
export type Compression = (typeof COMPRESSIONS)[number];

/** zlib's output chunk (default 16 KiB): fewer, larger chunks through the taps and COPY. */
export const ZLIB_CHUNK = 256 * 1024;

/**
 * The input a compressor gets at once. Each write to a zlib or brotli stream is one job on
 * libuv's threadpool, and brotli also ends a meta-block per write: fed the 16-64 KiB pieces a
 * COPY stream arrives in, brotli q1 took 2.6 s of CPU for 222 MB and compressed to 26%; fed
 * 1 MiB pieces, 1.2 s and 20%.
 */
export const COMPRESS_INPUT = 1024 * 1024;

/** Gathers small chunks into pieces of at least `bytes` (the last one may be smaller). */
export class Batch extends Transform {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly bytes = COMPRESS_INPUT) {
    // Room for a few pieces ahead: while the compressor works on one, the COPY keeps streaming
    // (with the default 16 KiB the server waited for every piece to be compressed).
    super({ readableHighWaterMark: 4 * bytes });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.size += chunk.length;
    if (this.size >= this.bytes) this.release();
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.size > 0) this.release();
    cb();
  }

  private release(): void {
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size));
    this.parts = [];
    this.size = 0;
  }
}

/** The data file's suffix after `.copy`. */
export function compressedSuffix(c: Compression): string {
  return c === 'brotli' ? '.br' : c === 'gzip' ? '.gz' : '';
}

/** A stream that compresses COPY text as the archive's `compression` says. */
export function compressStream(c: Compression): Transform {
  if (c === 'brotli') {
    return createBrotliCompress({
      chunkSize: ZLIB_CHUNK,
      params: { [zc.BROTLI_PARAM_QUALITY]: 1, [zc.BROTLI_PARAM_MODE]: zc.BROTLI_MODE_TEXT },
    });
  }
  // Level 1 with the most memory: a quarter less CPU than the default level, about the same size.
  if (c === 'gzip') return createGzip({ level: 1, memLevel: 9, chunkSize: ZLIB_CHUNK });
  return new PassThrough();
}

/** The inverse of compressStream. */
export function decompressStream(c: Compression): Transform {
  if (c === 'brotli') return createBrotliDecompress({ chunkSize: ZLIB_CHUNK });
  if (c === 'gzip') return createGunzip({ chunkSize: ZLIB_CHUNK });
  return new PassThrough();
}
