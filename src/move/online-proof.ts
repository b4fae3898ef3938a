import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Fleet } from '../fleet/fleet.js';
import { sqlDigest, type SqlDigest } from '../copy/sql-digest.js';
import type { CopyScope, CopyTable } from '../copy/tables.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { addChanges, emptyChanges, type ChangedRows } from './pgoutput-changes.js';
import { flushWal, type ReplicationRecord } from './replication.js';
import type { TableCheck } from './verify-checks.js';
import { bothSides, differs } from './online-steps.js';
import type { OnlineRun } from './online-steps.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** A difference is measured again this many times, this far apart, before it counts (the apply worker may lag). */
const RETRIES = 10;
const RETRY_MS = 300;

/** A temporary logical slot at the source: where the proof starts (`lsn`), and every change since. */
export interface ProofSlot {
  lsn: string;
  /** The rows the tenant's published tables changed since `lsn`, up to what is committed now. */
  changedSince(): Promise<ChangedRows>;
}

/**
 * A table as the proof measures it: the copy's columns and its primary key (the rows a change names).
 */
export type ProofTable = CopyTable & { pk: string[] };

/**
 * Run fn with a temporary slot on the source decoding the move's publication with PostgreSQL's
 * pgoutput: its position P is the proof's start, and peeking it (nothing is consumed) names every
 * row of the tenant changed since. Temporary: it goes with its session if the mover dies; dropped
 * here otherwise (the connection returns to the pool).
 */
export async function withProofSlot<T>(
  fleet: Fleet,
  repl: ReplicationRecord,
  schema: string,
  tables: ProofTable[],
  fn: (slot: ProofSlot) => Promise<T>,
): Promise<T> {
  const name = `${repl.name}_proof`;
  const pk = new Map(tables.map((t) => [t.table, t.pk]));
  return fleet.withClient(repl.source.shard, repl.source.database, async (c: ShardClient) => {
    const { rows } = await c.query<{ lsn: string }>(
      `select lsn::text as lsn from pg_create_logical_replication_slot($1, 'pgoutput', true)`,
      [name],
    );
    const slot: ProofSlot = {
      lsn: rows[0].lsn,
      changedSince: async () => {
        // Decoding reads only flushed WAL: rows a snapshot already holds under asynchronous commit
        // would be missing here (a proof that never agrees, a row left out of the check under the fence).
        await flushWal(c);
        const r = await c.query<{ data: Buffer }>(
          `select data from pg_logical_slot_peek_binary_changes($1, null, null, 'proto_version', '1', 'publication_names', $2)`,
          [name, repl.name],
        );
        return addChanges(
          emptyChanges(),
          r.rows.map((x) => x.data),
          schema,
          pk,
        );
      },
    };
    try {
      return await fn(slot);
    } finally {
      // Not dropped: the session is closed instead, which drops a temporary slot.
      await c.query('select pg_drop_replication_slot($1)', [name]).catch(() => {
        c.tenantctlBroken = true;
      });
    }
  });
}

const images = (set: Set<string>) => `[${[...set].join(',')}]`;

/** a − b, digest by digest (the sums commute: the rows of a not in b). */
function minus(a: SqlDigest, b: SqlDigest): SqlDigest {
  const [n, x, y] = a.hash.split(':').map(BigInt);
  const [m, u, v] = b.hash.split(':').map(BigInt);
  return { rows: a.rows - b.rows, bytes: a.bytes - b.bytes, hash: `${n - m}:${x - u}:${y - v}` };
}

/**
 * One proof round, while the tenant writes: a repeatable-read snapshot on each side (the target's
 * taken once it holds everything before P), every table's digest in each, then the rows changed
 * since P (read after both snapshots, so it holds every change either could see) digested in the
 * same snapshots and taken out. What is left, every row the stream has not touched since P, must
 * be equal: the source's as of P, the target's as the stream made it. A table the stream names
 * whole (a TRUNCATE) is left to the check under the fence.
 */
async function proofRound(run: OnlineRun, slot: ProofSlot, tables: ProofTable[]): Promise<{ checks: TableCheck[]; changed: ChangedRows }> {
  const { fleet, config } = run.deps;
  const { plan } = run;
  const srcScope: CopyScope = { model: plan.from.model, schema: plan.from.schema, key: plan.key };
  const dstScope: CopyScope = { model: plan.to.model, schema: plan.to.schema, key: plan.key };
  const inSnapshot = async <T>(c: Q, fn: () => Promise<T>) => {
    await c.query('begin isolation level repeatable read read only');
    try {
      await c.query('select 1');
      return await fn();
    } finally {
      await c.query('rollback').catch(() => undefined);
    }
  };
  return fleet.withClient(plan.from.shard, plan.from.database, (src) =>
    fleet.withClient(plan.to.shard, plan.to.database, (tgt) =>
      inSnapshot(src, () =>
        inSnapshot(tgt, async () => {
          const full: [SqlDigest, SqlDigest][] = [];
          for (const tb of tables)
            full.push(await Promise.all([sqlDigest(src, tb, srcScope, config), sqlDigest(tgt, tb, dstScope, config)]));
          const changed = await slot.changedSince();
          const checks: TableCheck[] = [];
          for (const [i, tb] of tables.entries()) {
            let [s, d] = full[i];
            const set = changed.touched.get(tb.table);
            if (changed.whole.has(tb.table)) {
              [s, d] = [minus(s, s), minus(d, d)];
            } else if (set) {
              const only = { pk: tb.pk, images: images(set) };
              const [cs, cd] = await Promise.all([sqlDigest(src, tb, srcScope, config, only), sqlDigest(tgt, tb, dstScope, config, only)]);
              [s, d] = [minus(s, cs), minus(d, cd)];
            }
            checks.push({
              table: tb.table,
              rows: s.rows,
              bytes: s.bytes,
              source: { rows: s.rows, hash: s.hash },
              target: { rows: d.rows, hash: d.hash },
            });
          }
          return { checks, changed };
        }),
      ),
    ),
  );
}

/**
 * Before the fence: proof rounds until one finds both sides equal in every row not changed since
 * P (a difference is measured again a few times: the apply worker makes what it has confirmed
 * visible a moment later). Returns that round's checks (what was proven) and how many rows had
 * changed since P; a difference that stays is returned for the caller to fail on.
 */
export async function proveBeforeFence(
  run: OnlineRun,
  slot: ProofSlot,
  tables: ProofTable[],
): Promise<{ checks: TableCheck[]; changed: ChangedRows }> {
  const r = await proofRound(run, slot, tables);
  // Each table's proof stands alone (its rows, its changes since P): only a differing one is measured again, in new snapshots.
  for (let i = 0; i < RETRIES && r.checks.some(differs); i++) {
    await sleep(RETRY_MS);
    const again = tables.filter((_, j) => differs(r.checks[j]));
    const next = await proofRound(run, slot, again);
    for (const [k, tb] of again.entries()) r.checks[tables.indexOf(tb)] = next.checks[k];
    r.changed = next.changed;
  }
  return r;
}

/**
 * Under the fence (every write of the tenant committed and applied): only the rows changed since
 * P, both sides by the same digest as they are now; a table named whole, in full. The rest was
 * proven before the fence and nothing has changed it since: at the source no change since P
 * leaves it out of this list, and the target changes only by the stream of those changes.
 */
export async function checkChangedUnderFence(
  run: OnlineRun,
  slot: ProofSlot,
  tables: ProofTable[],
): Promise<{ checks: TableCheck[]; changed: ChangedRows }> {
  const changed = await slot.changedSince();
  const measure = bothSides(run.deps.fleet, run.deps.config, run.plan);
  const picked = tables.filter((t) => changed.whole.has(t.table) || changed.touched.has(t.table));
  const one = (tb: ProofTable) =>
    changed.whole.has(tb.table) ? measure(tb) : measure(tb, { only: { pk: tb.pk, images: images(changed.touched.get(tb.table)!) } });
  let checks = await Promise.all(picked.map(one));
  for (let i = 0; i < RETRIES && checks.some(differs); i++) {
    await sleep(RETRY_MS);
    checks = await Promise.all(checks.map((c, j) => (differs(c) ? one(picked[j]) : c)));
  }
  return { checks, changed };
}
