import { basename } from 'node:path';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import { isConnectionError } from '../fleet/fleet.js';
import type { MigrationFile } from './files.js';
import { lineAt } from './split.js';
import type { TargetError } from './target-types.js';
import type { Drift } from './tracking.js';

/** SQLSTATEs worth another attempt: lock timeout, deadlock, serialization failure. */
export const RETRYABLE = new Set(['55P03', '40P01', '40001']);

/**
 * Whether a failed attempt gets another: a RETRYABLE code, or two targets' `create … if not
 * exists` of one database-wide object at once (`create extension if not exists btree_gist` in
 * every tenant schema's migration, run in parallel): the later insert into the system catalog
 * meets the earlier's uncommitted row and fails with a unique violation on a `pg_…_index` once it
 * commits; the next attempt sees the object and skips it.
 */
export function isRetryable(err: unknown): boolean {
  const code = pgCode(err);
  if (code !== undefined && RETRYABLE.has(code)) return true;
  const constraint = (err as { constraint?: unknown })?.constraint;
  return code === '23505' && typeof constraint === 'string' && /^pg_[a-z_]+_index$/.test(constraint);
}

/** Thrown inside a target's run to end it with a given error; converted to an outcome at the top. */
export class Stop extends Error {
  constructor(readonly error: TargetError) {
    super(error.message);
  }
}

/** PostgreSQL's SQLSTATE of an error, if it has one. */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** What the mapping needs to know of the target's run. */
export interface ErrorContext {
  /** `us1/tenant_schemas/t_acme` */
  id: string;
  /** The statement timeout in force was cut to the time left of targetTimeout, or that time ran out. */
  deadlineBound: boolean;
  /** Called when the connection is lost (the client must not go back to the pool). */
  markBroken(): void;
}

/**
 * A thrown error as the target's error: a lost connection (UNREACHABLE), a statement cancelled by
 * the target's deadline (TIMEOUT), or a failed migration with PostgreSQL's message, the failing
 * line of the file (from the error position) and what to do.
 */
export function toTargetError(err: unknown, m: MigrationFile | undefined, ctx: ErrorContext): TargetError {
  if (isConnectionError(err)) {
    ctx.markBroken();
    return {
      code: 'UNREACHABLE',
      message: `lost the connection to ${ctx.id}${m ? ` during ${m.id}` : ''}: ${redactText(errorMessage(err))}`,
      migration: m?.id,
      pgCode: pgCode(err),
      hint:
        m?.transactional === false
          ? `${m.id} runs outside a transaction and may be partly applied; check it, then run migrate up again`
          : 'check the shard, then run migrate up again',
    };
  }
  const code = pgCode(err);
  const e = err as { position?: string; detail?: string; hint?: string; tenantctlSql?: string; tenantctlLine?: number };
  let message = redactText(errorMessage(err));
  if (m && e.position && e.tenantctlSql !== undefined && e.tenantctlLine !== undefined) {
    // position is 1-based in the text sent; placeholder substitution never adds or removes lines.
    const line = e.tenantctlLine + lineAt(e.tenantctlSql, Number(e.position) - 1) - 1;
    message += ` (${basename(m.file)} line ${line})`;
  }
  if (e.detail) message += `; ${redactText(e.detail)}`;
  if (code === '57014' && ctx.deadlineBound) {
    return {
      code: 'TIMEOUT',
      message: `target ${ctx.id} ran longer than migrations.targetTimeout: ${message}`,
      migration: m?.id,
      pgCode: code,
      hint: 'raise migrations.targetTimeout, or split the migration; run migrate up again to continue',
    };
  }
  if (code === '57014' && /statement timeout/.test(message)) {
    // Not the target's deadline: one statement ran past migrations.statementTimeout. Said by its
    // name, so the fix (raise it, or batch the statement) is not a guess.
    return {
      code: 'TIMEOUT',
      message: `${message} (a statement of ${m?.id ?? 'the migration'} ran longer than migrations.statementTimeout)`,
      migration: m?.id,
      pgCode: code,
      hint: `raise migrations.statementTimeout, or split the statement into batches; ${m?.transactional === false ? `${m.id} runs outside a transaction and may be partly applied` : `${m?.id ?? 'it'} was rolled back`}; run migrate up again to continue`,
    };
  }
  return {
    // What the pool's protection refused (a table it cannot make safe) keeps its own code, as documented.
    code: (err as { code?: string }).code === 'RLS_UNSAFE' && !code ? 'RLS_UNSAFE' : 'MIGRATION_FAILED',
    message,
    migration: m?.id,
    pgCode: code,
    hint:
      e.hint ??
      (m?.transactional === false
        ? `${m.id} runs outside a transaction: statements before the failing one stay applied; make them idempotent (if not exists) and run again`
        : m
          ? `${m.id} was rolled back; fix it and run migrate up again`
          : undefined),
  };
}

/** The DRIFT error for changed files (also what a dry run or `migrate status` reports). */
export function driftError(drift: Drift[]): TargetError {
  return {
    code: 'DRIFT',
    message: `applied migration(s) changed since they ran: ${drift.map((d) => d.migration).join(', ')}`,
    migration: drift[0]?.migration,
    drift,
    hint: `restore the original file(s) and put the change in a new migration (tenantctl migrate create <name>); or, if the edited file is to stand, record it where it ran: tenantctl migrate repair ${drift[0]?.migration ?? '<migration>'} --rebaseline (or --reapply to run it again) --yes`,
  };
}

export function notInOneTransaction(m: MigrationFile): TargetError {
  return {
    code: 'MIGRATION_FAILED',
    message: `${m.id} runs outside a transaction and cannot run inside the caller's transaction`,
    migration: m.id,
    hint: 'use the step-by-step path (migrateTarget without withinTransaction)',
  };
}
