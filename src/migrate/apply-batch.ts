import { durationMs } from '../config/load.js';
import { isConnectionError } from '../fleet/fleet.js';
import { targetId } from '../placement/naming.js';
import { SilentMessage } from './apply-batch-message.js';
import { TransactionsText } from './apply-text.js';
import { timeoutSettings } from './target-session.js';
import type { KnownState, MigrateTargetOptions, MigrationClient, MigrationTarget, TargetOutcome } from './target-types.js';
import { rendered, templateVars } from './template.js';
import { TRACKING, versionOf } from './tracking.js';

/** One target of a shared message: its placement, the state read before the run, its options. */
export interface BatchMember {
  target: MigrationTarget;
  known: KnownState;
  /** Under its tenant's lock (`tenantLocked`), without `upTo`: see fitsOneMessage. */
  opts: MigrateTargetOptions;
}

/**
 * Several targets of one database in ONE message, each in its own transaction exactly as the
 * one-round-trip path builds it (settings and guard, each file with its tracking row, commit), one
 * after the other. A fleet of small targets otherwise pays a message, a wake-up of the backend and
 * of this process, and a result per target: with one cheap statement that is most of a target's
 * cost (issue 22). Only targets under their tenant's lock are taken (no try-lock in the message).
 *
 * Returns an outcome per member, or null for a member that must take its own path: when any
 * statement fails, PostgreSQL skips the rest of the message. The transaction open at the failure
 * is rolled back and the members' tracking rows are read once: a member with every pending
 * migration recorded committed (members commit in order, under locks no other run holds); every
 * other member (the failing one, those after it, one only partly applied) returns null and runs
 * alone (`migrateTarget`), which reports its error precisely and retries a lock timeout. A lost
 * connection is thrown (the caller fails every member as unreachable).
 *
 * Node's CPU per target is what this path is about (issue 22.3): no TargetSession, timer or
 * Result per member (a member's deadline is its statement_timeout: the message is sent at once),
 * and the text of members with the same pending files is built once (TransactionsText).
 */
export async function applyBatch(client: MigrationClient, members: BatchMember[]): Promise<(TargetOutcome | null)[]> {
  const text = batchText(members);
  for (const m of members) events(m, 'start', 0);
  const t0 = Date.now();
  const message = new SilentMessage(text);
  try {
    client.query(message);
    await message.done;
  } catch (err) {
    if (isConnectionError(err)) throw err;
    return committedOnly(client, members, t0);
  }
  // Each member's share of the message's time (they ran one after the other).
  const ms = Math.round((Date.now() - t0) / members.length);
  return members.map((m) => succeeded(m, ms));
}

/** The members' transactions, one after the other; members alike share their text's parts. */
function batchText(members: BatchMember[]): string {
  let text = '';
  let txs: TransactionsText | undefined;
  let prev: BatchMember | undefined;
  for (const m of members) {
    if (!txs || !prev || m.known.pending !== prev.known.pending || m.opts !== prev.opts || m.known.timed !== prev.known.timed) {
      txs = transactionsOf(m);
    }
    prev = m;
    text = `${txs.append(text, m.target.schema)}\n`;
  }
  return text;
}

/**
 * A member's transactions with the settings a TargetSession would give it when it starts: its
 * statement_timeout cut to its targetTimeout (the whole of it: the message goes out now).
 */
function transactionsOf(m: BatchMember): TransactionsText {
  const { config, targetTimeoutMs } = m.opts;
  const c = config.migrations;
  const statementMs = Math.min(durationMs(c.statementTimeout), Math.max(1, targetTimeoutMs ?? durationMs(c.targetTimeout)));
  const vars = templateVars(config);
  const settings = timeoutSettings(durationMs(c.lockTimeout), statementMs);
  return new TransactionsText(m.known.pending, (f) => rendered(f, vars), settings, m.known.timed);
}

function events(m: BatchMember, type: 'start' | 'done', ms: number): void {
  const on = m.opts.onEvent;
  if (!on) return;
  const target = targetId(m.target);
  for (const f of m.known.pending) {
    if (type === 'start') on({ type, target, migration: f.id });
    else on({ type, target, migration: f.id, durationMs: ms });
  }
}

/** A member whose every pending migration committed. */
function succeeded(m: BatchMember, ms: number): TargetOutcome {
  const { known } = m;
  const applied = known.pending.map((f) => f.id);
  events(m, 'done', ms);
  const before = versionOf(known.applied);
  const after = versionOf(applied);
  return {
    target: targetId(m.target),
    status: 'succeeded',
    applied,
    pending: [],
    unknown: known.unknown.length > 0 ? [...known.unknown] : [],
    durationMs: ms,
    attempts: 1,
    version: before === null || (after !== null && after > before) ? after : before,
  };
}

/** After a failed message: outcomes of the members that committed, null for the others. */
async function committedOnly(client: MigrationClient, members: BatchMember[], t0: number): Promise<(TargetOutcome | null)[]> {
  const schemas = members.map((m) => m.target.schema);
  let recorded: Set<string>;
  try {
    await client.query('rollback');
    const res = await client.query<{ s: string; name: string }>(
      `select target_schema as s, name from ${TRACKING} where target_schema = any($1::text[])`,
      [schemas],
    );
    recorded = new Set(res.rows.map((r) => `${r.s}\u0000${r.name}`));
  } catch (err) {
    if (isConnectionError(err)) throw err;
    // Nothing known: every member reads again on its own path.
    client.tenantctlBroken = true;
    return members.map(() => null);
  }
  const ms = Date.now() - t0;
  return members.map((m) => {
    const { known, target } = m;
    if (!known.pending.every((f) => recorded.has(`${target.schema}\u0000${f.id}`))) return null;
    return succeeded(m, ms);
  });
}
