import type pg from 'pg';
import { literal } from '../sql.js';
import { importMigration, type MigrationFile } from './files.js';
import { kyselyOnClient } from './kysely-on-client.js';
import { driftError, notInOneTransaction, Stop } from './target-errors.js';
import type { TargetSession } from './target-session.js';
import type { TargetOutcome } from './target-types.js';
import { appliedRowsSql, pendingFor, recordAppliedSql, rowsOfApplied, versionOf } from './tracking.js';

/**
 * Every pending migration inside the caller's transaction (withinTransaction): one round trip
 * for the settings, a transaction-level lock on the target's key, a check that the schema exists
 * and the read of what is applied; then one per migration with its tracking row. Failures are
 * returned, not thrown: the caller rolls its transaction back.
 */
export async function applyInCallerTransaction(s: TargetSession, migrations: MigrationFile[]): Promise<TargetOutcome> {
  const schema = literal(s.target.schema);
  let pending: MigrationFile[] = [];
  let unknown: string[] = [];
  try {
    const res = (await s.client.query(
      `${s.settingsSelect()}; ${s.xactLockSql()}; ` +
        `select exists (select 1 from pg_namespace where nspname = ${schema}) as ok; ${appliedRowsSql(s.target.schema)}`,
    )) as unknown as pg.QueryResult[];
    if (!res[2].rows[0]?.ok) throw new Error(`schema ${s.target.schema} does not exist: create it in the transaction first`);
    const report = pendingFor(migrations, rowsOfApplied(res[3].rows));
    pending = report.pending;
    unknown = report.unknown;
    if (report.drift.length > 0) throw new Stop(driftError(report.drift));
    for (const m of pending) {
      s.checkContinue(m);
      s.event('start', m);
      const t0 = Date.now();
      if (m.kind === 'module') {
        const mod = await importMigration(m);
        if (!(mod.transaction ?? m.transactional)) throw new Stop(notInOneTransaction(m));
        await mod.up(kyselyOnClient(s.client, { insideTransaction: true }));
        await s.client.query(recordAppliedSql(s.target.schema, m));
      } else {
        if (!m.transactional) throw new Stop(notInOneTransaction(m));
        // The newline ends a trailing line comment; the migration first keeps error positions its own.
        await s.execSql(`${s.sqlOf(m)}\n;\n${recordAppliedSql(s.target.schema, m)}`, 1);
      }
      s.applied.push(m.id);
      s.event('done', m, Date.now() - t0);
    }
    return s.outcome('succeeded', { unknown, version: versionOf([...res[3].rows.map((r) => r.name as string), ...s.applied]) });
  } catch (err) {
    const failing = pending.find((m) => !s.applied.includes(m.id));
    const error = s.toError(err, failing);
    // Nothing of this run survives the caller's rollback.
    s.applied.length = 0;
    return s.outcome('failed', { error, unknown, pending: pending.map((m) => m.id) });
  }
}
