import { createCipheriv, createDecipheriv, randomBytes, type DecipherGCM } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { UsageError } from '../errors.js';

/**
 * AES-256-GCM, streaming. An encrypted file is `TCE1` ‖ 12-byte IV ‖ ciphertext ‖ 16-byte tag.
 * Decryption holds back the last 16 bytes (the tag) and fails at the end if anything was changed;
 * callers commit nothing before the stream has ended (restore loads inside a transaction).
 */
const MAGIC = Buffer.from('TCE1');
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function encryptStream(key: Buffer): Transform {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  let started = false;
  return new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      if (!started) {
        this.push(Buffer.concat([MAGIC, iv]));
        started = true;
      }
      cb(null, cipher.update(chunk));
    },
    flush(cb: TransformCallback) {
      if (!started) this.push(Buffer.concat([MAGIC, iv]));
      const last = cipher.final();
      if (last.length) this.push(last);
      cb(null, cipher.getAuthTag());
    },
  });
}

export function decryptStream(key: Buffer, what: string): Transform {
  let header: Buffer | null = Buffer.alloc(0);
  let decipher: DecipherGCM | null = null;
  let tail = Buffer.alloc(0);
  const bad = (why: string) =>
    new UsageError('BAD_ARCHIVE', `${what}: ${why}`, 'the archive was altered or the data key is not the one it was written with');
  return new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      let buf = chunk;
      if (header) {
        header = Buffer.concat([header, buf]);
        if (header.length < MAGIC.length + IV_BYTES) return cb();
        if (!header.subarray(0, MAGIC.length).equals(MAGIC)) return cb(bad('not an encrypted tenantctl file'));
        decipher = createDecipheriv('aes-256-gcm', key, header.subarray(MAGIC.length, MAGIC.length + IV_BYTES));
        buf = header.subarray(MAGIC.length + IV_BYTES);
        header = null;
      }
      const all = tail.length ? Buffer.concat([tail, buf]) : buf;
      const keep = Math.min(TAG_BYTES, all.length);
      tail = Buffer.from(all.subarray(all.length - keep));
      const body = all.subarray(0, all.length - keep);
      cb(null, body.length ? decipher!.update(body) : undefined);
    },
    flush(cb: TransformCallback) {
      if (!decipher || tail.length < TAG_BYTES) return cb(bad('encrypted file is truncated'));
      decipher.setAuthTag(tail);
      try {
        cb(null, decipher.final());
      } catch {
        cb(bad('authentication failed (altered, truncated, or another key)'));
      }
    },
  });
}

/** Wrap (encrypt) a data key under the master key: base64 of IV ‖ ciphertext ‖ tag. */
export function wrapKey(master: Buffer, dataKey: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', master, iv);
  const ct = Buffer.concat([c.update(dataKey), c.final()]);
  return Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
}

export function unwrapKey(master: Buffer, wrapped: string): Buffer {
  const raw = Buffer.from(wrapped, 'base64');
  const d = createDecipheriv('aes-256-gcm', master, raw.subarray(0, IV_BYTES));
  d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  try {
    return Buffer.concat([d.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new UsageError(
      'BACKUP_KEY',
      'TENANTCTL_BACKUP_KEY is not the master key the data keys were wrapped with',
      'set TENANTCTL_BACKUP_KEY to the master key in use when the backups were made',
    );
  }
}

export const MASTER_KEY_ENV = 'TENANTCTL_BACKUP_KEY';

/** The master key from the environment: 32 bytes, base64. Missing or malformed: exit 2. */
export function masterKey(env: NodeJS.ProcessEnv = process.env): Buffer {
  const v = env[MASTER_KEY_ENV];
  if (!v) {
    throw new UsageError(
      'BACKUP_KEY',
      `${MASTER_KEY_ENV} is not set; encrypted backups need the master key`,
      `set ${MASTER_KEY_ENV} to 32 random bytes in base64 (e.g. openssl rand -base64 32)`,
    );
  }
  const k = Buffer.from(v, 'base64');
  if (k.length !== 32) {
    throw new UsageError(
      'BACKUP_KEY',
      `${MASTER_KEY_ENV} must be 32 bytes in base64; it decodes to ${k.length} bytes`,
      'generate one with: openssl rand -base64 32',
    );
  }
  return k;
}
