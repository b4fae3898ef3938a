import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import { ensureSchema, qualified } from '../sql.js';
import { MIGRATION_LOCK_CLASSID } from '../operations/lock-ids.js';
import { builtIfMissing, waitsWithoutBlocking } from './concurrent-ddl.js';
import { importMigration, type MigrationFile } from './files.js';
import { kyselyOnClient } from './kysely-on-client.js';
import { splitStatements } from './split.js';
import { driftError, Stop } from './target-errors.js';
import type { TargetSession } from './target-session.js';
import type { TargetOutcome } from './target-types.js';
import {
  appliedRowsSql,
  ensureTrackingTable,
  pendingFor,
  readAppliedRows,
  recordApplied,
  recordAppliedSql,
  rowsOfApplied,
  versionOf,
  type AppliedRow,
} from './tracking.js';
import type pg from 'pg';

/**
 * The step-by-step path: every kind of migration, every model. Round trips are the cost of a
 * fleet of small targets, so the common case takes three: the lock (with what exists), then
 * begin + settings + the read of what is applied (only under the lock: another run may have just
 * finished), then each migration with its tracking row and commit (the last one also unlocks).
 * The model's hooks run around it (the pool's serving role and row-level security).
 */
export async function applyStepByStep(s: TargetSession, migrations: MigrationFile[]): Promise<TargetOutcome> {
  const { client, target, hooks, opts } = s;
  let pending: MigrationFile[] = [];
  let unknown: string[] = [];
  let before: string[] | undefined;
  const warnings: string[] = [];
  try {
    const probe = await s.lock();
    // A model with work between the engine's statements reads on its own.
    const fused = probe.tracked && hooks.canFuse;
    const rows = fused ? await beginAndRead(s) : probe.tracked ? await readAppliedRows(client, target.schema) : [];
    const report = pendingFor(migrations, rows);
    pending = report.pending;
    unknown = report.unknown;
    before = rows.map((r) => r.name);
    if (report.drift.length > 0) throw new Stop(driftError(report.drift));

    // With nothing pending, the model may still have upkeep (the pool's RLS changed by hand).
    const upkeep = pending.length === 0 && hooks.needsUpkeep !== undefined && (await hooks.needsUpkeep(client, target.schema, opts.config));
    if (pending.length > 0) {
      if (!probe.tracked) await ensureTrackingTable(client, MIGRATION_LOCK_CLASSID);
      if (!probe.schemaExists) await ensureSchema(client, target.schema);
    }
    if (hooks.beforeMigrate && (pending.length > 0 || upkeep)) warnings.push(...(await hooks.beforeMigrate(client, opts.config)));

    for (const [i, m] of pending.entries()) {
      s.checkContinue(m);
      await applyOne(s, m, hooks.canFuse && i === pending.length - 1);
    }

    if (upkeep && hooks.afterMigrate) {
      const after = hooks.afterMigrate;
      await s.withRetry(undefined, () => s.inTransaction(async () => s.notes.push(...(await after(client, target.schema, opts.config)))));
    }
    const protectedTables = hooks.protectedTables ? await hooks.protectedTables(client, target.schema, opts.config) : undefined;
    warnings.push(...s.notes);
    return s.outcome('succeeded', {
      unknown,
      protectedTables,
      version: versionOf([...before, ...s.applied]),
      ...(warnings.length ? { warnings } : {}),
    });
  } catch (err) {
    const left = pending.map((p) => p.id).filter((id) => !s.applied.includes(id));
    return s.outcome('failed', {
      error: s.toError(err, undefined),
      unknown,
      pending: left,
      ...(before ? { version: versionOf([...before, ...s.applied]) } : {}),
    });
  }
}

/**
 * A concurrent build that failed (a duplicate, a timeout) leaves its index INVALID: not used, and
 * for a unique one not enforced. Its `if not exists` would then skip it on the retry the error's
 * hint asks for, and the migration would be recorded applied without the index. So before the
 * statement runs, an INVALID index of that name in the target's schema (only an earlier failed
 * build makes one) is dropped, concurrently, and the statement builds it again.
 */
async function dropInvalidLeftover(s: TargetSession, name: string | null): Promise<void> {
  if (!name) return;
  const schema = s.target.schema;
  const { rows } = await s.client.query(
    `select 1 from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2 and not i.indisvalid`,
    [schema, name],
  );
  if (rows.length) await s.client.query(`drop index concurrently if exists ${qualified(schema, name)}`);
}

/**
 * After a file that runs outside a transaction: no index of the target's schema may be INVALID
 * (a concurrent build the file made that failed without failing the file, or one an earlier
 * failed run left under another form). Recorded applied, it would never be built; so the target
 * fails, naming them and the fix.
 */
async function refuseInvalidIndexes(s: TargetSession, m: MigrationFile): Promise<void> {
  const { rows } = await s.client.query<{ name: string }>(
    `select c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and not i.indisvalid order by 1`,
    [s.target.schema],
  );
  if (rows.length === 0) return;
  const names = rows.map((r) => `${s.target.schema}.${r.name}`);
  throw new Stop({
    code: 'MIGRATION_FAILED',
    message: `${m.id} left ${names.length === 1 ? 'an INVALID index' : 'INVALID indexes'} (${names.join(', ')}): a concurrent build that failed; it is not used, nor enforced if unique`,
    migration: m.id,
    hint: `drop ${names.length === 1 ? 'it' : 'them'} (drop index concurrently ${names.join(', ')}), fix what made the build fail (duplicates, a long transaction), then run migrate up again; write the build as create index concurrently if not exists, and a retry rebuilds it`,
  });
}

/** begin, the transaction's settings, and the target's applied rows, in one round trip. */
async function beginAndRead(s: TargetSession): Promise<AppliedRow[]> {
  const res = await s.client.query(`begin; ${s.settingsSql(true)}; ${appliedRowsSql(s.target.schema)}`);
  s.txOpen = true;
  const results = res as unknown as pg.QueryResult[];
  return rowsOfApplied(results[results.length - 1].rows);
}

/** A module migration's `up` and whether it runs in a transaction (its export, else its text). */
async function load(m: MigrationFile): Promise<{ up?: (db: any) => Promise<void>; transactional: boolean }> {
  if (m.kind !== 'module') return { transactional: m.transactional };
  try {
    const mod = await importMigration(m);
    return { up: mod.up, transactional: mod.transaction ?? m.transactional };
  } catch (err) {
    throw new Stop({
      code: 'MIGRATION_FAILED',
      message: `cannot load ${m.id}: ${redactText(errorMessage(err))}`,
      migration: m.id,
      hint: 'fix the module; nothing of it was applied',
    });
  }
}

/**
 * Apply one migration. `last`: the target's lock is released in the same round trip as the
 * commit (only when the model runs nothing after it).
 */
async function applyOne(s: TargetSession, m: MigrationFile, last: boolean): Promise<void> {
  s.event('start', m);
  const t0 = Date.now();
  const { up, transactional } = await load(m);
  const sql = m.kind === 'sql' ? s.sqlOf(m) : '';
  if (transactional) await applyInItsTransaction(s, m, sql, up, last);
  else await applyOutsideTransaction(s, m, sql, up, t0);
  s.applied.push(m.id);
  s.event('done', m, Date.now() - t0);
}

async function applyInItsTransaction(
  s: TargetSession,
  m: MigrationFile,
  sql: string,
  up: ((db: any) => Promise<void>) | undefined,
  last: boolean,
): Promise<void> {
  const { client, target, hooks, opts } = s;
  await s.withRetry(m, async () => {
    try {
      if (!s.txOpen) {
        await client.query(`begin; ${s.settingsSql(true)}`);
        s.txOpen = true;
      }
      const tail = `${recordAppliedSql(target.schema, m)}; commit${last ? `; ${s.unlockSql()}` : ''}`;
      if (up || hooks.afterMigrate) {
        if (up) await up(kyselyOnClient(client, { insideTransaction: true }));
        else await s.execSql(sql, 1);
        // The tables this migration created or changed are protected before anyone sees them.
        if (hooks.afterMigrate) s.notes.push(...(await hooks.afterMigrate(client, target.schema, opts.config)));
        await client.query(tail);
      } else {
        // The migration, its tracking row and the commit in one round trip (the newline ends a
        // trailing line comment). The migration comes first, so error positions stay its own.
        await s.execSql(`${sql}\n;\n${tail}`, 1);
      }
      s.txOpen = false;
      if (last) s.locked = false;
    } catch (err) {
      if (s.txOpen) {
        await client.query('rollback').catch(() => s.markBroken());
        s.txOpen = false;
      }
      throw err;
    }
  });
}

async function applyOutsideTransaction(
  s: TargetSession,
  m: MigrationFile,
  sql: string,
  up: ((db: any) => Promise<void>) | undefined,
  t0: number,
): Promise<void> {
  const { client, target, hooks, opts } = s;
  if (s.txOpen) {
    // The read's transaction: statements outside a transaction cannot run inside it.
    await client.query('rollback');
    s.txOpen = false;
  }
  await client.query(s.settingsSql(false));
  try {
    if (up) {
      await up(kyselyOnClient(client, { insideTransaction: false }));
    } else {
      const statements = splitStatements(sql);
      for (const st of statements) {
        s.checkContinue(m, st !== statements[0]);
        const unbounded = waitsWithoutBlocking(st.sql);
        // Its own round trips: CREATE INDEX CONCURRENTLY refuses to share a query string.
        if (unbounded) await client.query(s.lockTimeoutSql(false));
        await dropInvalidLeftover(s, builtIfMissing(st.sql));
        await s.withRetry(m, () => s.execSql(st.sql, st.line));
        if (unbounded) await client.query(s.lockTimeoutSql(true));
      }
    }
    await refuseInvalidIndexes(s, m);
  } finally {
    await client.query('reset search_path; reset lock_timeout; reset statement_timeout').catch(() => s.markBroken());
  }
  await s.withRetry(m, () =>
    s.inTransaction(async () => {
      if (hooks.afterMigrate) s.notes.push(...(await hooks.afterMigrate(client, target.schema, opts.config)));
      await recordApplied(client, target.schema, m, Date.now() - t0);
    }),
  );
}
