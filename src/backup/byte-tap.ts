import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** A pass-through that counts and SHA-256-hashes the bytes of a stored file. */
export class ByteTap extends Transform {
  private readonly sha = createHash('sha256');
  bytes = 0;
  onBytes?: (n: number) => void;

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.sha.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }

  stored(): { bytes: number; sha256: string } {
    return { bytes: this.bytes, sha256: this.sha.copy().digest('hex') };
  }
}
