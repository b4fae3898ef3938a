import { basename } from 'node:path';
import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import type pg from 'pg';
import { durationMs } from '../config/load.js';
import { redactText } from '../config/redact.js';
import type { Config, Model } from '../config/types.js';
import { errorMessage, TenantctlError } from '../errors.js';
import { isConnectionError, type Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { targetId } from '../placement/naming.js';
import { ensureServingRole, repairRlsPolicies, rlsNeedsApply, tenantScopedTables } from '../placement/rls.js';
import { ensureSchema, ident, literal } from '../sql.js';
import { importMigration, type MigrationFile } from './files.js';
import { kyselyOnClient } from './kysely-on-client.js';
import { lineAt, splitStatements } from './split.js';
import { renderSql, templateVars, type TemplateVars } from './template.js';
import {
  appliedRowsSql,
  ensureTrackingTable,
  pendingFor,
  readApplied,
  readAppliedRows,
  recordApplied,
  recordAppliedSql,
  rowsOfApplied,
  TRACKING,
  versionOf,
  type AppliedRow,
  type Drift,
} from './tracking.js';

/** Where migrations run: a Placement (src/placement/naming.ts). */
export interface MigrationTarget {
  model: Model;
  shard: string;
  database: string;
  schema: string;
}

export type TargetStatus = 'succeeded' | 'failed' | 'skipped';
export type TargetErrorCode = 'MIGRATION_FAILED' | 'DRIFT' | 'LOCKED' | 'TIMEOUT' | 'UNREACHABLE' | 'INTERRUPTED';

export interface TargetError {
  code: TargetErrorCode;
  /** Written for the operator; PostgreSQL's own message for a failed statement. */
  message: string;
  /** The migration that failed, e.g. `0004_add_archived_at`. */
  migration?: string;
  /** PostgreSQL's SQLSTATE, e.g. `42703`. */
  pgCode?: string;
  /** What to do about it. */
  hint?: string;
  /** For DRIFT: every changed file. */
  drift?: Drift[];
}

export interface TargetOutcome {
  /** `us1/tenant_schemas/t_acme` */
  target: string;
  status: TargetStatus;
  /** Applied by this run, in order. */
  applied: string[];
  /** Not applied: what a dry run would apply, or what remains after a failure. */
  pending: string[];
  /** Applied at the target with no file here (a newer release ran there). Reported, not fatal. */
  unknown: string[];
  /** Pool targets: the tenant-scoped tables under tenantctl's row-level security. */
  protectedTables?: string[];
  /** The highest migration applied at the target afterwards (null: none), when it was read. */
  version?: string | null;
  /** Why it was skipped. */
  reason?: string;
  /** Things the operator should know that did not fail the target. */
  warnings?: string[];
  durationMs: number;
  error?: TargetError;
}

export type MigrateEvent =
  | { type: 'start'; target: string; migration: string }
  | { type: 'done'; target: string; migration: string; durationMs: number }
  | { type: 'retry'; target: string; migration: string; attempt: number; delayMs: number; pgCode?: string };

export interface MigrateTargetOptions {
  config: Pick<Config, 'migrations' | 'tenantKey' | 'rls' | 'servingRole'>;
  /** Read and compare only: nothing is created, locked or applied. */
  dryRun?: boolean;
  /** Stops before the next migration starts (Ctrl-C, or a fan-out stopping on error). */
  signal?: AbortSignal;
  onEvent?: (e: MigrateEvent) => void;
  /** How long to wait for another session's lock on this target; default migrations.lockTimeout. */
  lockWaitMs?: number;
  /** Overall budget for this target; default migrations.targetTimeout. */
  targetTimeoutMs?: number;
  /** Backoff base for retries (tests shorten it). */
  retryBaseMs?: number;
  /**
   * What the caller just read at the target (one query per database, before the fan-out). With
   * it, a target whose pending migrations are all transactional SQL is migrated in ONE round
   * trip when nothing changed since; anything unexpected falls back to the step-by-step path.
   */
  known?: KnownState;
  /**
   * The caller has begun a transaction on this client (provisioning a new schema or database
   * tenant: placement, migrations and grants commit or roll back together). Every pending
   * migration runs inside it with its tracking row: no begin/commit, no session lock (a
   * transaction-level one on the same key keeps a concurrent `migrate up` of the target out), no
   * retries (the failed statement aborted the caller's transaction), no rollback (the caller's).
   * The tracking table must exist before the caller's transaction began (ensureTrackingTable:
   * creators in concurrent transactions would collide on the catalog's unique indexes) and the
   * schema must exist. Every pending migration must be transactional (see runsInOneTransaction);
   * one that is not fails the outcome. Not for pool targets.
   */
  withinTransaction?: boolean;
}

export interface KnownState {
  /** Ids applied at the target when it was read (shared between targets: never mutated). */
  applied: readonly string[];
  pending: readonly MigrationFile[];
  unknown: readonly string[];
  /** The database has the tracking table (implied when something is applied). */
  tracked?: boolean;
}

/** First key of tenantctl's two-int advisory locks: 'tnct'. */
export { MIGRATION_LOCK_CLASSID };
const RETRYABLE = new Set(['55P03', '40P01', '40001']);
/** Errors the one-round-trip path raises on purpose (a cast of a volatile text to int). */
const BUSY_MARKER = 'tenantctl:lock-busy:';
const CHANGED_MARKER = 'tenantctl:state-changed:';
const LOCK_POLL_MS = 100;

/** A ShardClient, or any pg client (tests, one-off tools). */
export type MigrationClient = pg.ClientBase & Partial<Pick<ShardClient, 'tenantctlDatabase' | 'tenantctlBroken'>>;

/**
 * Bring one target (shard, database, schema, model) to the head of the migration files, on one
 * connection the caller holds. Never throws for a failed migration: the outcome says what
 * happened, and fan-out collects one outcome per target.
 *
 * - Refuses (DRIFT) when an applied migration's file changed since.
 * - Holds a per-target session advisory lock (classid MIGRATION_LOCK_CLASSID, objid
 *   hashtext(schema)): schemas of one database migrate in parallel, one schema never twice.
 * - Each migration runs in its own transaction (search_path, lock_timeout and statement_timeout
 *   set locally) with its tracking row, unless it opts out (`-- tenantctl:no-transaction`).
 * - Lock waits, deadlocks and serialization failures are retried with jittered backoff.
 * - A pool target then gets tenantctl's row-level security on its tenant-scoped tables.
 *
 * @example
 *   const outcome = await fleet.withClient('us1', 'tenant_schemas', (c) =>
 *     migrateTarget(c, { model: 'schema', shard: 'us1', database: 'tenant_schemas', schema: 't_acme' },
 *       migrations, { config }));
 *   if (outcome.status === 'failed') console.error(outcome.error?.message);
 */
export async function migrateTarget(
  client: MigrationClient,
  target: MigrationTarget,
  migrations: MigrationFile[],
  opts: MigrateTargetOptions,
): Promise<TargetOutcome> {
  if (client.tenantctlDatabase !== undefined && client.tenantctlDatabase !== target.database) {
    throw new Error(`migrateTarget: client is on database ${client.tenantctlDatabase}, target is ${target.database}`);
  }
  if (opts.withinTransaction && target.model === 'pool') throw new Error('migrateTarget: withinTransaction is not for pool targets');
  const run = new TargetRun(client, target, migrations, opts);
  return run.execute();
}

/**
 * Whether every migration can run inside one caller-held transaction (migrateTarget with
 * `withinTransaction`): SQL files without the no-transaction marker, modules that do not export
 * `transaction = false`. A module that cannot be imported answers false, so the step-by-step
 * path reports the problem as it always does.
 */
export async function runsInOneTransaction(migrations: MigrationFile[]): Promise<boolean> {
  for (const m of migrations) {
    if (m.kind === 'sql') {
      if (!m.transactional) return false;
      continue;
    }
    // As applyOne decides: the module's export, else what its text says.
    const mod = await importMigration(m).catch(() => undefined);
    if (!mod || !(mod.transaction ?? m.transactional)) return false;
  }
  return true;
}

/**
 * migrateTarget on a connection from the fleet; a shard that cannot be reached becomes an
 * UNREACHABLE outcome instead of an exception.
 */
export async function migratePlacement(
  fleet: Fleet,
  target: MigrationTarget,
  migrations: MigrationFile[],
  opts: MigrateTargetOptions,
): Promise<TargetOutcome> {
  const started = Date.now();
  try {
    return await fleet.withClient(target.shard, target.database, (c) => migrateTarget(c, target, migrations, opts));
  } catch (err) {
    if (err instanceof TenantctlError && err.code === 'UNREACHABLE') {
      return {
        target: targetId(target),
        status: 'failed',
        applied: [],
        pending: migrations.map((m) => m.id),
        unknown: [],
        durationMs: Date.now() - started,
        error: { code: 'UNREACHABLE', message: err.message, hint: err.hint },
      };
    }
    throw err;
  }
}

/** Thrown inside a run to end it with a given error; converted to an outcome at the top. */
class Stop extends Error {
  constructor(readonly error: TargetError) {
    super(error.message);
  }
}

class TargetRun {
  private readonly id: string;
  private readonly started = Date.now();
  /** Side doors the managed-RLS step closed on a pool target (named in the report). */
  private readonly secured: string[] = [];
  private readonly deadline: number;
  private timedOut = false;
  /** The statement_timeout in force was cut to the time left of targetTimeout. */
  private boundByDeadline = false;
  private readonly applied: string[] = [];
  /** The target's advisory lock is held. */
  private locked = false;
  /** A transaction is open on the client (begun with the read, or by applyOne). */
  private txOpen = false;
  private readonly vars: TemplateVars;
  private readonly lockTimeoutMs: number;
  private readonly statementTimeoutMs: number;
  private readonly retries: number;
  private readonly pool: boolean;

  constructor(
    private readonly client: MigrationClient,
    private readonly target: MigrationTarget,
    private readonly migrations: MigrationFile[],
    private readonly opts: MigrateTargetOptions,
  ) {
    const m = opts.config.migrations;
    this.id = targetId(target);
    this.deadline = this.started + (opts.targetTimeoutMs ?? durationMs(m.targetTimeout));
    this.lockTimeoutMs = durationMs(m.lockTimeout);
    this.statementTimeoutMs = durationMs(m.statementTimeout);
    this.retries = m.retries;
    this.vars = templateVars(opts.config);
    this.pool = target.model === 'pool';
  }

  async execute(): Promise<TargetOutcome> {
    if (this.opts.signal?.aborted) return this.outcome('skipped', { reason: 'interrupted' });
    const timer = setTimeout(() => (this.timedOut = true), Math.max(0, this.deadline - Date.now()));
    timer.unref?.();
    let pending: MigrationFile[] = [];
    let unknown: string[] = [];
    let before: string[] | undefined;
    const warnings: string[] = [];
    try {
      if (this.opts.dryRun) {
        const report = pendingFor(this.migrations, await readApplied(this.client, [this.target.schema]));
        if (report.drift.length > 0) return this.outcome('failed', { error: driftError(report.drift), unknown: report.unknown });
        return this.outcome('succeeded', { pending: report.pending.map((p) => p.id), unknown: report.unknown });
      }

      if (this.opts.withinTransaction) return await this.inCallerTransaction();

      if (this.opts.known) {
        const fast = await this.oneRoundTrip(this.opts.known);
        if (fast) return fast;
      }

      // Round trips are the cost of a fleet of small targets, so the common path takes three:
      // the lock (with what exists), then begin + settings + the read of what is applied (only
      // under the lock: another run may have just finished), then each migration with its
      // tracking row and commit (the last one also unlocks).
      const probe = await this.lock();
      // Pool targets leave the transaction for ensureServingRole, so they read on their own.
      const fused = probe.tracked && !this.pool;
      const rows = fused ? await this.beginAndRead() : probe.tracked ? await readAppliedRows(this.client, this.target.schema) : [];
      const report = pendingFor(this.migrations, rows);
      pending = report.pending;
      unknown = report.unknown;
      before = rows.map((r) => r.name);
      if (report.drift.length > 0) throw new Stop(driftError(report.drift));

      // Pool targets: when nothing is pending, still repair RLS that was changed by hand.
      const rlsBroken = this.pool && pending.length === 0 && (await rlsNeedsApply(this.client, this.target.schema, this.opts.config));
      if (pending.length > 0) {
        if (!probe.tracked) await ensureTrackingTable(this.client, MIGRATION_LOCK_CLASSID);
        if (!probe.schemaExists) await this.ensureSchema();
      }
      if (this.pool && (pending.length > 0 || rlsBroken)) {
        const role = await ensureServingRole(this.client, this.opts.config);
        if (role.bypassesRls) {
          warnings.push(
            `serving role ${this.opts.config.servingRole.name} is SUPERUSER or BYPASSRLS: row-level security does not apply to it`,
          );
        }
      }

      for (const [i, m] of pending.entries()) {
        this.checkContinue(m);
        await this.applyOne(m, !this.pool && i === pending.length - 1);
      }

      let protectedTables: string[] | undefined;
      if (this.pool) {
        // Each migration secured its own tables in its transaction; this repairs hand-made changes.
        if (rlsBroken) {
          await this.withRetry(undefined, () =>
            this.inTransaction(async () => {
              this.secured.push(...(await repairRlsPolicies(this.client, this.target.schema, this.opts.config)).secured);
            }),
          );
        }
        protectedTables = (await tenantScopedTables(this.client, this.target.schema, this.opts.config)).map((t) => t.table);
        // Side doors closed by the managed-RLS step are named in the report.
        warnings.push(...this.secured);
      }
      return this.outcome('succeeded', {
        unknown,
        protectedTables,
        version: versionOf([...before, ...this.applied]),
        ...(warnings.length ? { warnings } : {}),
      });
    } catch (err) {
      const error = err instanceof Stop ? err.error : this.toError(err, undefined);
      const left = pending.map((p) => p.id).filter((id) => !this.applied.includes(id));
      return this.outcome('failed', {
        error,
        unknown,
        pending: left,
        ...(before ? { version: versionOf([...before, ...this.applied]) } : {}),
      });
    } finally {
      clearTimeout(timer);
      await this.release();
    }
  }

  /**
   * The whole target in one message: try the lock, check that the target still has the applied
   * count the caller read, then each pending migration with its tracking row in its own
   * transaction, then unlock. Returns null to take the step-by-step path instead (not eligible,
   * lock busy, state changed, or a retryable error such as a lock timeout); a real failure is
   * reported as precisely as the step-by-step path would (what committed is read back, and the
   * error position is mapped into the failing file).
   */
  private async oneRoundTrip(known: KnownState): Promise<TargetOutcome | null> {
    const pending = known.pending;
    if (this.pool || pending.length === 0 || (known.applied.length === 0 && !known.tracked)) return null;
    if (pending.some((m) => m.kind !== 'sql' || !m.transactional)) return null;
    const schema = literal(this.target.schema);
    let text =
      `select case when pg_try_advisory_lock(${MIGRATION_LOCK_CLASSID}, hashtext(${schema})) then 0 ` +
      `else ('${BUSY_MARKER}' || random())::int end;\n`;
    const parts: { m: MigrationFile; offset: number; sql: string }[] = [];
    for (const [i, m] of pending.entries()) {
      // Settings and (first) the guard in one SELECT: every statement costs a result to parse.
      // The guard runs in a statement after the lock's, so it reads what committed before it.
      // The schema must exist: otherwise search_path would fall through to public.
      const guard =
        i === 0
          ? `, case when (select count(*) from ${TRACKING} where target_schema = ${schema}) = ${known.applied.length} ` +
            `and exists (select 1 from pg_namespace where nspname = ${schema}) then 0 ` +
            `else ('${CHANGED_MARKER}' || random())::int end`
          : '';
      text += `begin; ${this.settingsSelect()}${guard};\n`;
      const sql = rendered(m, this.vars);
      parts.push({ m, offset: text.length, sql });
      // The newline ends a trailing line comment of the file.
      text += `${sql}\n;\n${recordAppliedSql(this.target.schema, m)}; commit;\n`;
    }
    text += this.unlockSql();
    this.opts.onEvent?.({ type: 'start', target: this.id, migration: pending[0].id });
    const t0 = Date.now();
    try {
      await this.client.query(text);
    } catch (err) {
      if (errorMessage(err).includes(BUSY_MARKER)) return null;
      if (isConnectionError(err)) throw err;
      // The lock is held and a transaction may be open: close both, and read what committed.
      this.locked = true;
      this.txOpen = true;
      const res = (await this.client.query(`rollback; ${this.unlockSql()}; ${appliedRowsSql(this.target.schema)}`)) as unknown as pg.QueryResult[];
      this.locked = false;
      this.txOpen = false;
      // The guard failed before anything of ours ran: another run got there first. Re-read.
      if (errorMessage(err).includes(CHANGED_MARKER)) return null;
      // Past the guard, under our lock, every new row is ours.
      const committed = new Set(rowsOfApplied(res[res.length - 1].rows).map((r) => r.name));
      for (const m of pending) if (committed.has(m.id)) this.applied.push(m.id);
      const code = pgCode(err);
      if (code !== undefined && RETRYABLE.has(code)) return null;
      const failing = pending.find((m) => !committed.has(m.id));
      const part = parts.find((x) => x.m === failing);
      const e = err as { position?: string };
      if (part && e.position !== undefined) {
        const pos = Number(e.position) - part.offset;
        if (pos >= 1 && pos <= part.sql.length) Object.assign(err as object, { position: String(pos), tenantctlSql: part.sql, tenantctlLine: 1 });
        else delete e.position;
      }
      return this.outcome('failed', {
        error: this.toError(err, failing),
        pending: pending.map((m) => m.id).filter((id) => !committed.has(id)),
        unknown: [...known.unknown],
        version: versionOf([...known.applied, ...this.applied]),
      });
    }
    const ms = Date.now() - t0;
    for (const m of pending) {
      this.applied.push(m.id);
      this.opts.onEvent?.({ type: 'done', target: this.id, migration: m.id, durationMs: ms });
    }
    return this.outcome('succeeded', { unknown: [...known.unknown], version: versionOf([...known.applied, ...this.applied]) });
  }

  /**
   * Every pending migration inside the caller's transaction (opts.withinTransaction): one round
   * trip for the settings, a transaction-level lock on the target's key, a check that the schema
   * exists and the read of what is applied; then one per migration with its tracking row.
   * Failures are returned, not thrown: the caller rolls its transaction back.
   */
  private async inCallerTransaction(): Promise<TargetOutcome> {
    const schema = literal(this.target.schema);
    let pending: MigrationFile[] = [];
    let unknown: string[] = [];
    try {
      const res = (await this.client.query(
        `${this.settingsSelect()}; select pg_advisory_xact_lock(${MIGRATION_LOCK_CLASSID}, hashtext(${schema})); ` +
          `select exists (select 1 from pg_namespace where nspname = ${schema}) as ok; ${appliedRowsSql(this.target.schema)}`,
      )) as unknown as pg.QueryResult[];
      if (!res[2].rows[0]?.ok) throw new Error(`schema ${this.target.schema} does not exist: create it in the transaction first`);
      const report = pendingFor(this.migrations, rowsOfApplied(res[3].rows));
      pending = report.pending;
      unknown = report.unknown;
      if (report.drift.length > 0) throw new Stop(driftError(report.drift));
      for (const m of pending) {
        this.checkContinue(m);
        this.opts.onEvent?.({ type: 'start', target: this.id, migration: m.id });
        const t0 = Date.now();
        if (m.kind === 'module') {
          const mod = await importMigration(m);
          if (!(mod.transaction ?? m.transactional)) throw new Stop(notInOneTransaction(m));
          await mod.up(kyselyOnClient(this.client, { insideTransaction: true }));
          await this.client.query(recordAppliedSql(this.target.schema, m));
        } else {
          if (!m.transactional) throw new Stop(notInOneTransaction(m));
          // The newline ends a trailing line comment; the migration first keeps error positions its own.
          await this.execSql(`${rendered(m, this.vars)}\n;\n${recordAppliedSql(this.target.schema, m)}`, 1);
        }
        this.applied.push(m.id);
        this.opts.onEvent?.({ type: 'done', target: this.id, migration: m.id, durationMs: Date.now() - t0 });
      }
      return this.outcome('succeeded', { unknown, version: versionOf([...res[3].rows.map((r) => r.name as string), ...this.applied]) });
    } catch (err) {
      const failing = pending.find((m) => !this.applied.includes(m.id));
      const error = err instanceof Stop ? err.error : this.toError(err, failing);
      // Nothing of this run survives the caller's rollback.
      this.applied.length = 0;
      return this.outcome('failed', { error, unknown, pending: pending.map((m) => m.id) });
    }
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
      this.client.tenantctlBroken = true;
    }
  }

  /** begin, the transaction's settings, and the target's applied rows, in one round trip. */
  private async beginAndRead(): Promise<AppliedRow[]> {
    const res = await this.client.query(`begin; ${this.settingsSql(true)}; ${appliedRowsSql(this.target.schema)}`);
    this.txOpen = true;
    const results = res as unknown as pg.QueryResult[];
    return rowsOfApplied(results[results.length - 1].rows);
  }

  private outcome(status: TargetStatus, extra: Partial<TargetOutcome>): TargetOutcome {
    return {
      target: this.id,
      status,
      applied: [...this.applied],
      pending: [],
      unknown: [],
      durationMs: Date.now() - this.started,
      ...extra,
    };
  }

  /** Throws when the run must not start another step: interrupted, or out of time. */
  private checkContinue(m: MigrationFile | undefined, midway = false): void {
    if (this.opts.signal?.aborted) {
      throw new Stop({
        code: 'INTERRUPTED',
        message: m && midway ? `interrupted inside ${m.id} (it runs outside a transaction)` : `interrupted before ${m?.id ?? 'the next step'} started`,
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
   * Take the target's session advisory lock, waiting up to the lock timeout; also says whether
   * the tracking table and the target schema exist (same round trip).
   */
  private async lock(): Promise<{ tracked: boolean; schemaExists: boolean }> {
    const waitMs = this.opts.lockWaitMs ?? this.lockTimeoutMs;
    const until = Date.now() + waitMs;
    for (;;) {
      const res = await this.client.query<{ ok: boolean; tracked: boolean; schema_exists: boolean }>(
        `select pg_try_advisory_lock($1::int, hashtext($2)) as ok, to_regclass($3) is not null as tracked,
                exists (select 1 from pg_namespace where nspname = $2) as schema_exists`,
        [MIGRATION_LOCK_CLASSID, this.target.schema, TRACKING],
      );
      const r = res.rows[0];
      if (r?.ok) {
        this.locked = true;
        return { tracked: r.tracked, schemaExists: r.schema_exists };
      }
      if (Date.now() >= until || this.opts.signal?.aborted) break;
      await sleep(Math.min(LOCK_POLL_MS + Math.random() * LOCK_POLL_MS, Math.max(0, until - Date.now())));
    }
    if (this.opts.signal?.aborted) this.checkContinue(undefined);
    throw new Stop({
      code: 'LOCKED',
      message: `target ${this.id} is being migrated by another session${await this.lockHolder()}; waited ${waitMs}ms`,
      hint: 'wait for the other run to finish, then run migrate up again',
    });
  }

  private unlockSql(): string {
    return `select pg_advisory_unlock(${MIGRATION_LOCK_CLASSID}, hashtext(${literal(this.target.schema)}))`;
  }

  private async lockHolder(): Promise<string> {
    try {
      const res = await this.client.query<{ pid: number; application_name: string; since: Date | null }>(
        `select l.pid, a.application_name, a.backend_start as since
           from pg_locks l left join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.granted and l.objsubid = 2
            and l.database = (select oid from pg_database where datname = current_database())
            and l.classid = $1::int::oid and l.objid = hashtext($2)::oid
          limit 1`,
        [MIGRATION_LOCK_CLASSID, this.target.schema],
      );
      const h = res.rows[0];
      if (!h) return '';
      return ` (pid ${h.pid}${h.application_name ? `, ${h.application_name}` : ''}${h.since ? `, connected since ${h.since.toISOString()}` : ''})`;
    } catch {
      return '';
    }
  }

  private async ensureSchema(): Promise<void> {
    await ensureSchema(this.client, this.target.schema);
  }

  /**
   * Apply one migration. `last`: the target's lock is released in the same round trip as the
   * commit (not for pool targets, which still check their row-level security afterwards).
   */
  private async applyOne(m: MigrationFile, last: boolean): Promise<void> {
    this.opts.onEvent?.({ type: 'start', target: this.id, migration: m.id });
    const t0 = Date.now();
    let transactional = m.transactional;
    let up: ((db: any) => Promise<void>) | undefined;
    if (m.kind === 'module') {
      try {
        const mod = await importMigration(m);
        up = mod.up;
        if (mod.transaction !== undefined) transactional = mod.transaction;
      } catch (err) {
        throw new Stop({
          code: 'MIGRATION_FAILED',
          message: `cannot load ${m.id}: ${redactText(errorMessage(err))}`,
          migration: m.id,
          hint: 'fix the module; nothing of it was applied',
        });
      }
    }
    const sql = m.kind === 'sql' ? rendered(m, this.vars) : '';
    if (transactional) {
      await this.withRetry(m, async () => {
        try {
          if (!this.txOpen) {
            await this.client.query(`begin; ${this.settingsSql(true)}`);
            this.txOpen = true;
          }
          const tail = `${recordAppliedSql(this.target.schema, m)}; commit${last ? `; ${this.unlockSql()}` : ''}`;
          if (up || this.pool) {
            if (up) await up(kyselyOnClient(this.client, { insideTransaction: true }));
            else await this.execSql(sql, 1);
            // The tables this migration created or changed are protected before anyone sees them.
            if (this.pool) this.secured.push(...(await repairRlsPolicies(this.client, this.target.schema, this.opts.config)).secured);
            await this.client.query(tail);
          } else {
            // The migration, its tracking row and the commit in one round trip (the newline ends a
            // trailing line comment). The migration comes first, so error positions stay its own.
            await this.execSql(`${sql}\n;\n${tail}`, 1);
          }
          this.txOpen = false;
          if (last) this.locked = false;
        } catch (err) {
          if (this.txOpen) {
            await this.client.query('rollback').catch(() => {
              this.client.tenantctlBroken = true;
            });
            this.txOpen = false;
          }
          throw err;
        }
      });
    } else {
      if (this.txOpen) {
        // The read's transaction: statements outside a transaction cannot run inside it.
        await this.client.query('rollback');
        this.txOpen = false;
      }
      await this.setTimeouts(false);
      try {
        if (up) {
          await up(kyselyOnClient(this.client, { insideTransaction: false }));
        } else {
          const statements = splitStatements(sql);
          for (const st of statements) {
            this.checkContinue(m, st !== statements[0]);
            await this.withRetry(m, () => this.execSql(st.sql, st.line));
          }
        }
      } finally {
        await this.client.query('reset search_path; reset lock_timeout; reset statement_timeout').catch(() => {
          this.client.tenantctlBroken = true;
        });
      }
      await this.withRetry(m, () =>
        this.inTransaction(async () => {
          if (this.pool) this.secured.push(...(await repairRlsPolicies(this.client, this.target.schema, this.opts.config)).secured);
          await recordApplied(this.client, this.target.schema, m, Date.now() - t0);
        }),
      );
    }
    this.applied.push(m.id);
    this.opts.onEvent?.({ type: 'done', target: this.id, migration: m.id, durationMs: Date.now() - t0 });
  }

  /** search_path, lock_timeout and statement_timeout, transaction-local or for the session. */
  private async setTimeouts(local: boolean): Promise<void> {
    await this.client.query(this.settingsSql(local));
  }

  /**
   * The settings as SET statements with literal values (so they share a round trip with begin,
   * and return no row to parse). The statement timeout is cut to the time left of targetTimeout.
   */
  /** The transaction-local settings as one SELECT of set_config calls (one result, not three). */
  private settingsSelect(): string {
    const remaining = Math.max(1, this.deadline - Date.now());
    const statement = Math.min(this.statementTimeoutMs, remaining);
    this.boundByDeadline = remaining < this.statementTimeoutMs;
    const searchPath = literal(`${ident(this.target.schema)}, public`);
    return (
      `select set_config('search_path', ${searchPath}, true), set_config('lock_timeout', '${this.lockTimeoutMs}ms', true), ` +
      `set_config('statement_timeout', '${statement}ms', true)`
    );
  }

  private settingsSql(local: boolean): string {
    const remaining = Math.max(1, this.deadline - Date.now());
    const statement = Math.min(this.statementTimeoutMs, remaining);
    this.boundByDeadline = remaining < this.statementTimeoutMs;
    const set = local ? 'set local' : 'set';
    return (
      `${set} search_path to ${ident(this.target.schema)}, public; ${set} lock_timeout = '${this.lockTimeoutMs}ms'; ` +
      `${set} statement_timeout = '${statement}ms'`
    );
  }

  private async inTransaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.client.query('begin');
    try {
      const out = await fn();
      await this.client.query('commit');
      return out;
    } catch (err) {
      await this.client.query('rollback').catch(() => {
        this.client.tenantctlBroken = true;
      });
      throw err;
    }
  }

  /** Send SQL text; errors remember the text and its first line, to name the failing line. */
  private async execSql(sql: string, firstLine: number): Promise<void> {
    try {
      await this.client.query(sql);
    } catch (err) {
      if (err && typeof err === 'object') Object.assign(err, { tenantctlSql: sql, tenantctlLine: firstLine });
      throw err;
    }
  }

  /** Retry on lock timeouts, deadlocks and serialization failures, with jittered backoff. */
  private async withRetry<T>(m: MigrationFile | undefined, fn: () => Promise<T>): Promise<T> {
    const base = this.opts.retryBaseMs ?? 200;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Stop) throw err;
        const code = pgCode(err);
        const retryable = code !== undefined && RETRYABLE.has(code);
        if (!retryable || attempt > this.retries || this.opts.signal?.aborted) throw this.stopFor(err, m, attempt);
        // Equal jitter: half the exponential delay fixed, half random, capped at 10s.
        const exp = Math.min(10_000, base * 2 ** (attempt - 1));
        const delayMs = Math.round(exp / 2 + (Math.random() * exp) / 2);
        if (Date.now() + delayMs >= this.deadline) throw this.stopFor(err, m, attempt);
        this.opts.onEvent?.({ type: 'retry', target: this.id, migration: m?.id ?? '(rls)', attempt, delayMs, pgCode: code });
        await sleep(delayMs);
      }
    }
  }

  private stopFor(err: unknown, m: MigrationFile | undefined, attempts: number): Stop {
    const error = this.toError(err, m);
    if (attempts > 1) error.message += ` (after ${attempts} attempts)`;
    return new Stop(error);
  }

  private toError(err: unknown, m: MigrationFile | undefined): TargetError {
    if (isConnectionError(err)) {
      this.client.tenantctlBroken = true;
      return {
        code: 'UNREACHABLE',
        message: `lost the connection to ${this.id}${m ? ` during ${m.id}` : ''}: ${redactText(errorMessage(err))}`,
        migration: m?.id,
        pgCode: pgCode(err),
        hint: m?.transactional === false
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
    if (code === '57014' && (this.boundByDeadline || this.timedOut)) {
      return {
        code: 'TIMEOUT',
        message: `target ${this.id} ran longer than migrations.targetTimeout: ${message}`,
        migration: m?.id,
        pgCode: code,
        hint: 'raise migrations.targetTimeout, or split the migration; run migrate up again to continue',
      };
    }
    return {
      code: 'MIGRATION_FAILED',
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
}

/** The DRIFT error for changed files (also what a dry run or `migrate status` reports). */
export function driftError(drift: Drift[]): TargetError {
  return {
    code: 'DRIFT',
    message: `applied migration(s) changed since they ran: ${drift.map((d) => d.migration).join(', ')}`,
    migration: drift[0]?.migration,
    drift,
    hint: 'restore the original file(s) and put the change in a new migration (tenantctl migrate create <name>)',
  };
}

function notInOneTransaction(m: MigrationFile): TargetError {
  return {
    code: 'MIGRATION_FAILED',
    message: `${m.id} runs outside a transaction and cannot run inside the caller's transaction`,
    migration: m.id,
    hint: 'use the step-by-step path (migrateTarget without withinTransaction)',
  };
}

/** Rendered SQL per migration file and placeholder values: a thousand targets render it once. */
const renderCache = new WeakMap<MigrationFile, { vars: string; sql: string }>();

function rendered(m: MigrationFile, vars: TemplateVars): string {
  const key = JSON.stringify(vars);
  const hit = renderCache.get(m);
  if (hit && hit.vars === key) return hit.sql;
  const sql = renderSql(m.sql ?? '', vars);
  renderCache.set(m, { vars: key, sql });
  return sql;
}

function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
