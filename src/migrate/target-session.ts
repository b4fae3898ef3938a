import { searchPathSetting } from '../placement/target-search-path.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { durationMs } from '../config/load.js';
import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { migrationHooks, type MigrationHooks } from '../placement/drivers.js';
import { targetId } from '../placement/naming.js';
import { ident } from '../sql.js';
import { advisoryLockHolder, describeHolder, foreignHolderError, type LockHolder } from '../operations/lock-holder.js';
import { targetLockSql } from './target-lock.js';
import type { MigrationFile } from './files.js';
import { nextRetry, RETRY_BASE_MS, RETRY_CAP_MS, type RetryPlan } from './retry-schedule.js';
import { tableLockHolders } from './table-lock-holders.js';
import { rendered, templateVars, type TemplateVars } from './template.js';
import { mentionsReadOnlyShared, readOnlySharedSql } from '../placement/shared-read-only.js';
import { isRetryable, pgCode, Stop, toTargetError, type ErrorContext } from './target-errors.js';
import type { MigrateTargetOptions, MigrationClient, MigrationTarget, TargetError, TargetOutcome, TargetStatus } from './target-types.js';
import { TRACKING } from './tracking.js';

const LOCK_POLL_MS = 100;
/** SQLSTATE lock_not_available: lock_timeout ran out. */
const LOCK_TIMEOUT = '55P03';
/** What a retry of the pool's row-level security upkeep is counted under (it has no migration). */
const UPKEEP = '(rls)';

/**
 * One target's run on one connection: its deadline (migrations.targetTimeout), its session
 * advisory lock, the settings of its transactions, retries with backoff, and the mapping of
 * errors to the target's error. The apply paths (apply-steps.ts, apply-one-round-trip.ts,
 * apply-in-transaction.ts) drive it; it knows nothing of the order of their steps.
 */
export class TargetSession implements ErrorContext {
  readonly id: string;
  readonly started = Date.now();
  readonly deadline: number;
  readonly hooks: MigrationHooks;
  /** Applied by this run, in order. */
  readonly applied: string[] = [];
  /** Things the model's hooks want in the report (side doors closed). */
  readonly notes: string[] = [];
  /** The target's advisory lock is held. */
  locked = false;
  /** A transaction is open on the client. */
  txOpen = false;
  private timedOut = false;
  /** The statement_timeout in force was cut to the time left of targetTimeout. */
  private boundByDeadline = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly vars: TemplateVars;
  private readonly lockTimeoutMs: number;
  private readonly statementTimeoutMs: number;
  private readonly retryPlan: RetryPlan;
  /** Failed attempts so far, per migration id (UPKEEP for the upkeep). */
  private readonly attemptsOf = new Map<string, number>();
  /** Retries so far, all migrations of the target together. */
  private retried = 0;
  /** The caller's tenant lock stands for the target's lock (MigrateTargetOptions.tenantLocked). */
  readonly tenantLocked: boolean;

  constructor(
    readonly client: MigrationClient,
    readonly target: MigrationTarget,
    readonly opts: MigrateTargetOptions,
  ) {
    const m = opts.config.migrations;
    this.id = targetId(target);
    this.hooks = migrationHooks(target.model);
    this.deadline = this.started + (opts.targetTimeoutMs ?? durationMs(m.targetTimeout));
    this.lockTimeoutMs = durationMs(m.lockTimeout);
    this.statementTimeoutMs = durationMs(m.statementTimeout);
    this.retryPlan = {
      retries: m.retries,
      lockTimeoutMs: this.lockTimeoutMs,
      baseMs: opts.retryBaseMs ?? RETRY_BASE_MS,
      capMs: RETRY_CAP_MS,
    };
    this.vars = templateVars(opts.config);
    // A shared (pool) target has no tenant lock of its own: it always takes the target's lock.
    this.tenantLocked = (opts.tenantLocked ?? false) && !this.hooks.shared;
  }

  /** Start the deadline's clock; call end() when done. */
  begin(): void {
    this.timer = setTimeout(() => (this.timedOut = true), Math.max(0, this.deadline - Date.now()));
    this.timer.unref?.();
  }

  /** Stop the clock and end what is still open (the read's transaction, the lock). */
  async end(): Promise<void> {
    clearTimeout(this.timer);
    await this.release();
  }

  get deadlineBound(): boolean {
    return this.boundByDeadline || this.timedOut;
  }

  markBroken(): void {
    this.client.tenantctlBroken = true;
  }

  /**
   * A migration's SQL with the placeholders filled in. In a placement of its own, a transactional
   * file that may make a read-only shared table ends by taking the writes on those tables back
   * from the tenant's role (src/placement/shared-read-only.ts), in the file's transaction.
   */
  sqlOf(m: MigrationFile): string {
    const sql = rendered(m, this.vars);
    if (this.hooks.shared || !m.transactional || !mentionsReadOnlyShared(sql, this.opts.config)) return sql;
    return `${sql}\n;\n${readOnlySharedSql(this.target.schema, this.opts.config)}`;
  }

  outcome(status: TargetStatus, extra: Partial<TargetOutcome>): TargetOutcome {
    return {
      target: this.id,
      status,
      applied: [...this.applied],
      pending: [],
      unknown: [],
      durationMs: Date.now() - this.started,
      attempts: this.attempts,
      ...extra,
    };
  }

  event(type: 'start' | 'done', m: MigrationFile, durationMs = 0): void {
    if (type === 'start') this.opts.onEvent?.({ type, target: this.id, migration: m.id });
    else this.opts.onEvent?.({ type, target: this.id, migration: m.id, durationMs });
  }

  /** Throws when the run must not start another step: interrupted, or out of time. */
  checkContinue(m: MigrationFile | undefined, midway = false): void {
    if (this.opts.signal?.aborted) {
      throw new Stop({
        code: 'INTERRUPTED',
        message:
          m && midway
            ? `interrupted inside ${m.id} (it runs outside a transaction)`
            : `interrupted before ${m?.id ?? 'the next step'} started`,
        migration: m?.id,
        hint: 'run migrate up again to continue',
      });
    }
    if (this.timedOut || Date.now() >= this.deadline) {
      throw new Stop({
        code: 'TIMEOUT',
        message: `target ${this.id} ran longer than migrations.targetTimeout; ${
          m ? (midway ? `stopped inside ${m.id} (it runs outside a transaction)` : `${m.id} was not started`) : 'stopped'
        }`,
        migration: m?.id,
        hint: 'raise migrations.targetTimeout, or split the migration; run migrate up again to continue',
      });
    }
  }

  /**
   * Take the target's session advisory lock, waiting up to migrations.lockWait for another
   * tenantctl session (concurrent creates of pool tenants all pass through the pool target; that
   * wait holds up no application query, so it is not the short lockTimeout); also says whether
   * the tracking table and the target schema exist (same round trip).
   */
  async lock(): Promise<{ tracked: boolean; schemaExists: boolean }> {
    const waitMs = this.opts.lockWaitMs ?? durationMs(this.opts.config.migrations.lockWait ?? '30s');
    const until = Date.now() + waitMs;
    let holder: LockHolder | null = null;
    for (;;) {
      const res = await this.client.query<{ ok: boolean; tracked: boolean; schema_exists: boolean }>(
        `select ${this.tenantLocked ? '$1::int is not null' : 'pg_try_advisory_lock($1::int, hashtext($2))'} as ok,
                to_regclass($3) is not null as tracked, exists (select 1 from pg_namespace where nspname = $2) as schema_exists`,
        [MIGRATION_LOCK_CLASSID, this.target.schema, TRACKING],
      );
      const r = res.rows[0];
      if (r?.ok) {
        this.locked = !this.tenantLocked;
        return { tracked: r.tracked, schemaExists: r.schema_exists };
      }
      // Tenants (and the serving role) can connect here: a holder that is not tenantctl is
      // named at once, never waited on until the timeout.
      holder = await advisoryLockHolder(this.client, MIGRATION_LOCK_CLASSID, this.target.schema);
      if (holder?.foreign) {
        const e = foreignHolderError(`target ${this.id}`, holder);
        throw new Stop({ code: 'LOCKED', message: e.message, hint: e.hint });
      }
      if (Date.now() >= until || this.opts.signal?.aborted) break;
      await sleep(Math.min(LOCK_POLL_MS + Math.random() * LOCK_POLL_MS, Math.max(0, until - Date.now())));
    }
    if (this.opts.signal?.aborted) this.checkContinue(undefined);
    throw new Stop({
      code: 'LOCKED',
      message: `target ${this.id} is being migrated by another session${describeHolder(holder)}; waited ${waitMs}ms`,
      hint: 'wait for the other run to finish, then run migrate up again',
    });
  }

  /** The statement that takes the lock without waiting (for text sent in one message). */
  tryLockSql(): string {
    return this.tenantLocked ? 'true' : targetLockSql('pg_try_advisory_lock', this.target.schema);
  }

  /** The transaction-level lock on the same key (inside a caller's transaction). */
  xactLockSql(): string {
    return this.tenantLocked ? 'select true' : `select ${targetLockSql('pg_advisory_xact_lock', this.target.schema)}`;
  }

  unlockSql(): string {
    return this.tenantLocked ? 'select true' : `select ${targetLockSql('pg_advisory_unlock', this.target.schema)}`;
  }

  /** End what is still open, in one round trip: the read's transaction, and the target's lock. */
  private async release(): Promise<void> {
    if (!this.txOpen && !this.locked) return;
    const parts: string[] = [];
    if (this.txOpen) parts.push('rollback');
    if (this.locked) parts.push(this.unlockSql());
    try {
      await this.client.query(parts.join('; '));
      this.txOpen = false;
      this.locked = false;
    } catch {
      // A connection that cannot unlock must not go back to the pool holding the lock.
      this.markBroken();
    }
  }

  /** The statement timeout: migrations.statementTimeout, cut to the time left of targetTimeout. */
  private statementMs(): number {
    const remaining = Math.max(1, this.deadline - Date.now());
    this.boundByDeadline = remaining < this.statementTimeoutMs;
    return Math.min(this.statementTimeoutMs, remaining);
  }

  /** The transaction-local settings as one SELECT of set_config calls (one result, not three). */
  settingsSelect(): string {
    return `select ${searchPathSetting(this.target.schema)}${this.otherSettings()}`;
  }

  /** settingsSelect after search_path's set_config: the same for every target of a run. */
  otherSettings(): string {
    return timeoutSettings(this.lockTimeoutMs, this.statementMs());
  }

  /**
   * search_path, lock_timeout and statement_timeout as SET statements with literal values (so
   * they share a round trip with begin), transaction-local or for the session.
   */
  settingsSql(local: boolean): string {
    const statement = this.statementMs();
    const set = local ? 'set local' : 'set';
    return (
      `${set} search_path to ${ident(this.target.schema)}, public; ${set} lock_timeout = '${this.lockTimeoutMs}ms'; ` +
      `${set} statement_timeout = '${statement}ms'`
    );
  }

  /**
   * The session's lock_timeout: migrations.lockTimeout, or (`bounded` false) none, for a
   * statement whose wait holds up no query (concurrent-ddl.ts); statement_timeout still ends it.
   */
  lockTimeoutSql(bounded: boolean): string {
    return `set lock_timeout = '${bounded ? this.lockTimeoutMs : 0}ms'`;
  }

  /**
   * `fn` in a transaction of its own with the target's settings: its DDL (the pool's row-level
   * security) waits for a lock at most lock_timeout, as a migration's does.
   */
  async inTransaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.client.query(`begin; ${this.settingsSql(true)}`);
    this.txOpen = true;
    try {
      const out = await fn();
      await this.client.query('commit');
      this.txOpen = false;
      return out;
    } catch (err) {
      await this.client.query('rollback').catch(() => this.markBroken());
      this.txOpen = false;
      throw err;
    }
  }

  /** Send SQL text; errors remember the text and its first line, to name the failing line. */
  async execSql(sql: string, firstLine: number): Promise<void> {
    try {
      await this.client.query(sql);
    } catch (err) {
      if (err && typeof err === 'object') Object.assign(err, { tenantctlSql: sql, tenantctlLine: firstLine });
      throw err;
    }
  }

  /**
   * Run `fn`, one migration's attempt (its whole transaction), again after a lock timeout,
   * deadlock or serialization failure, on the retry schedule (retry-schedule.ts).
   */
  async withRetry<T>(m: MigrationFile | undefined, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        await this.afterFailedAttempt(err, m);
      }
    }
  }

  /**
   * An attempt of `m` failed with `err`: when it gets another, wait the schedule's gap and
   * return; otherwise throw the Stop that ends the target (LOCKED when the retries are spent on
   * lock timeouts, TIMEOUT when the next attempt would pass migrations.targetTimeout). The
   * one-round-trip path calls it too, so its attempt counts.
   */
  async afterFailedAttempt(err: unknown, m: MigrationFile | undefined): Promise<void> {
    if (err instanceof Stop) throw err;
    const key = m?.id ?? UPKEEP;
    const attempt = (this.attemptsOf.get(key) ?? 0) + 1;
    this.attemptsOf.set(key, attempt);
    const code = pgCode(err);
    // Ctrl-C between attempts of a busy migration: the file is not at fault, the run was stopped.
    if (code !== undefined && isRetryable(err) && this.opts.signal?.aborted) {
      throw new Stop({
        code: 'INTERRUPTED',
        message: `interrupted while ${m?.id ?? 'the upkeep'} waited for a lock (${attempt} attempt${attempt === 1 ? '' : 's'}); nothing of it was applied${m?.transactional === false ? ' beyond the statements before that one' : ''}`,
        migration: m?.id,
        pgCode: code,
        hint: 'run migrate up again to continue',
      });
    }
    if (code === undefined || !isRetryable(err) || this.opts.signal?.aborted) throw this.stopFor(err, m, attempt);
    const next = nextRetry(attempt, this.retryPlan, Date.now(), this.deadline);
    if (!next.retry) throw await this.gaveUp(err, m, attempt, next.why);
    this.retried++;
    this.opts.onEvent?.({ type: 'retry', target: this.id, migration: key, attempt, delayMs: next.delayMs, pgCode: code });
    await sleep(next.delayMs);
  }

  /** 1 plus every retry of the target's migrations (and its upkeep). */
  get attempts(): number {
    return 1 + this.retried;
  }

  private stopFor(err: unknown, m: MigrationFile | undefined, attempts: number): Stop {
    const error = this.toError(err, m);
    if (attempts > 1) error.message += ` (after ${attempts} attempts)`;
    return new Stop(error);
  }

  /** The end of a migration that kept failing on a lock: what held it, and what to do. */
  private async gaveUp(err: unknown, m: MigrationFile | undefined, attempts: number, why: 'spent' | 'deadline'): Promise<Stop> {
    if (pgCode(err) !== LOCK_TIMEOUT) return this.stopFor(err, m, attempts);
    const base = this.toError(err, m);
    const what = m?.id ?? 'the row-level security upkeep';
    const tries = `${attempts} attempt${attempts === 1 ? '' : 's'} of at most ${this.lockTimeoutMs}ms each (migrations.lockTimeout), ${((Date.now() - this.started) / 1000).toFixed(1)}s in all`;
    const holders = await tableLockHolders(this.client, this.target.schema);
    const partly = m?.transactional === false ? `; ${m.id} runs outside a transaction: statements before the failing one stay applied` : '';
    if (why === 'deadline') {
      return new Stop({
        ...base,
        code: 'TIMEOUT',
        message: `target ${this.id} ran out of migrations.targetTimeout waiting for a lock for ${what} in ${tries}: ${base.message}${holders}`,
        hint: `a long transaction holds a lock on a table ${what} changes: end it, or raise migrations.targetTimeout; run migrate up again to continue${partly}`,
      });
    }
    return new Stop({
      ...base,
      code: 'LOCKED',
      message: `${what} could not lock a table of ${this.id} in ${tries}: ${base.message}${holders}`,
      hint:
        `a long transaction holds a lock on a table ${what} changes: end it, or run migrate up again when it has ended; ` +
        `migrations.retries allows more attempts, each holding up that table's queries for at most migrations.lockTimeout${partly}`,
    });
  }

  toError(err: unknown, m: MigrationFile | undefined): TargetError {
    return err instanceof Stop ? err.error : toTargetError(err, m, this);
  }
}

/** lock_timeout and statement_timeout as set_config calls, each after a comma (settingsSelect). */
export function timeoutSettings(lockTimeoutMs: number, statementMs: number): string {
  return `, set_config('lock_timeout', '${lockTimeoutMs}ms', true), set_config('statement_timeout', '${statementMs}ms', true)`;
}
