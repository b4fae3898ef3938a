import { SESSION_LOCK_WAIT_MS } from '../fleet/shard-connections.js';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Shard } from '../config/types.js';
import { shardEndpoint } from '../fleet/connection-url.js';
import { TenantctlError, UsageError } from '../errors.js';
import { redactText } from '../config/redact.js';
import { InterruptedError } from '../operations/interrupt.js';

/**
 * A `pg_dump -Fc` of a schema or database placement, for full fidelity beside the portable COPY
 * data. Run with zx (`zx/core`: the `$` alone; the package's main entry also loads its 700 KB
 * vendor bundle, about 0.2 CPU-s on every backup for nothing used here); the password goes in
 * PGPASSWORD in the child's environment, never on its command line (visible to every user in `ps`). Taken from the backup's exported snapshot, so
 * both describe the same moment.
 */

/** Streams pg_dump's output into a sink without zx keeping a copy of it in memory. */
class Discard {
  length = 0;
  push(): number {
    return 0;
  }
  join(): string {
    return '';
  }
  reduce<T>(_fn: unknown, init: T): T {
    return init;
  }
  *[Symbol.iterator](): Iterator<string | Buffer> {}
}

function pgEnv(shard: Shard): NodeJS.ProcessEnv {
  const u = new URL(shard.url);
  const ep = shardEndpoint(shard);
  return {
    ...process.env,
    PGHOST: ep.host,
    PGPORT: String(ep.port),
    PGUSER: ep.user,
    PGPASSWORD: decodeURIComponent(u.password),
    PGSSLMODE: u.searchParams.get('sslmode') ?? process.env.PGSSLMODE ?? 'prefer',
    PGAPPNAME: 'tenantctl backup',
  };
}

/** `pg_dump --version`'s major version, or a clear error when pg_dump is not on PATH. */
export async function pgDumpMajor(): Promise<{ major: number; text: string }> {
  const { $ } = await import('zx/core');
  const r = await $({ quiet: true, nothrow: true })`pg_dump --version`;
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(r.stdout);
  if (r.exitCode !== 0 || !m) {
    throw new UsageError(
      'PG_DUMP',
      'pg_dump was not found on PATH (schema and database backups include a pg_dump file)',
      "install the PostgreSQL client programs of the server's major version or newer",
    );
  }
  return { major: Number(m[1]), text: `${m[1]}${m[2] ? `.${m[2]}` : ''}` };
}

/** Refuse a pg_dump older than the server: it cannot dump a newer server. */
export function assertPgDumpVersion(pgDump: { major: number; text: string }, serverVersionNum: number, serverText: string): void {
  const serverMajor = Math.floor(serverVersionNum / 10000);
  if (pgDump.major < serverMajor) {
    throw new UsageError(
      'PG_DUMP',
      `pg_dump ${pgDump.text} is older than the server (PostgreSQL ${serverText}); pg_dump must be at least major version ${serverMajor}`,
      `put pg_dump ${serverMajor} or newer first on PATH`,
    );
  }
}

export interface DumpTarget {
  shard: Shard;
  database: string;
  /** Only this schema (the tenant's own schema in a shared database); without it, the whole database. */
  schema?: string;
  snapshot?: string;
  /**
   * Compress at level 1 (true) or not at all (false). Level 1 takes about half of pg_dump's
   * default CPU for a file about 15% larger, and pg_dump's compression is what a schema backup
   * waits for; without it, the file is as big as the data (storage that compresses by itself).
   */
  compress?: boolean;
  /**
   * Print values as this session would (the backup reads its tables' files from the dump):
   * this time zone (PGTZ) and UTF8, without the operator's PGOPTIONS.
   */
  timeZone?: string;
  utf8?: boolean;
  /** Ctrl-C or SIGTERM: pg_dump is ended at once (a big table's stream is not waited for). */
  signal?: AbortSignal;
}

/** Run pg_dump -Fc and stream its output into `out`. */
export async function runPgDump(t: DumpTarget, out: Writable): Promise<void> {
  const { $ } = await import('zx/core');
  // Its LOCK TABLE … IN ACCESS SHARE MODE waits for a tenant's lock no longer than tenantctl's own statements do.
  const args = ['-Fc', '--no-password', `--lock-wait-timeout=${SESSION_LOCK_WAIT_MS}`, '-d', t.database];
  if (t.schema) args.push('-n', t.schema);
  if (t.snapshot) args.push(`--snapshot=${t.snapshot}`);
  if (t.compress !== undefined) args.push(`--compress=${t.compress ? 1 : 0}`);
  if (t.utf8) args.push('--encoding=UTF8');
  const env = pgEnv(t.shard);
  if (t.timeZone !== undefined) {
    env.PGTZ = t.timeZone;
    delete env.PGOPTIONS;
  }
  const stderr: string[] = [];
  const p = $({
    env,
    quiet: true,
    nothrow: true,
    ...(t.signal ? { signal: t.signal } : {}),
    store: { stdout: new Discard(), stdall: new Discard(), stderr } as never,
  })`pg_dump ${args}`;
  // Both settled before either is judged: when pg_dump fails, the reader's "ended in the middle of
  // the archive" would otherwise hide pg_dump's own words (what failed, and why).
  const [piped, ended] = await Promise.allSettled([pipeline(p.stdout, out), p]);
  // Ended by the signal: an interrupt (the caller drops the archive), not pg_dump's failure.
  if (t.signal?.aborted) throw new InterruptedError('stopped while pg_dump was reading the tables');
  if (ended.status === 'rejected') throw ended.reason;
  const result = ended.value;
  if (result.exitCode === 0 && piped.status === 'rejected') throw piped.reason;
  if (result.exitCode !== 0) {
    throw new TenantctlError(
      'PG_DUMP',
      `pg_dump of ${t.database}${t.schema ? ` schema ${t.schema}` : ''} failed: ${redactText(stderr.join('').trim())}`,
    );
  }
}
