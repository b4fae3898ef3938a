import { isConnectionError } from '../fleet/fleet.js';
import { messageOf } from './apply-one-round-trip.js';
import { TargetSession } from './target-session.js';
import type { KnownState, MigrateTargetOptions, MigrationClient, MigrationTarget, TargetOutcome } from './target-types.js';
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
 */
export async function applyBatch(client: MigrationClient, members: BatchMember[]): Promise<(TargetOutcome | null)[]> {
  const sessions = members.map((m) => new TargetSession(client, m.target, m.opts));
  let text = '';
  for (const [i, s] of sessions.entries()) {
    s.begin();
    const m = members[i];
    for (const f of m.known.pending) s.event('start', f);
    text += `${messageOf(s, m.known).text}\n`;
  }
  const t0 = Date.now();
  try {
    await client.query(text);
  } catch (err) {
    if (isConnectionError(err)) {
      for (const s of sessions) void s.end();
      throw err;
    }
    return committedOnly(client, members, sessions);
  }
  // Each member's share of the message's time (they ran one after the other).
  const ms = (Date.now() - t0) / members.length;
  return sessions.map((s, i) => {
    const { known } = members[i];
    for (const m of known.pending) {
      s.applied.push(m.id);
      s.event('done', m, ms);
    }
    void s.end();
    return {
      ...s.outcome('succeeded', { unknown: [...known.unknown], version: versionOf([...known.applied, ...s.applied]) }),
      durationMs: ms,
    };
  });
}

/** After a failed message: outcomes of the members that committed, null for the others. */
async function committedOnly(
  client: MigrationClient,
  members: BatchMember[],
  sessions: TargetSession[],
): Promise<(TargetOutcome | null)[]> {
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
    for (const s of sessions) void s.end();
    if (isConnectionError(err)) throw err;
    // Nothing known: every member reads again on its own path.
    client.tenantctlBroken = true;
    return members.map(() => null);
  }
  return sessions.map((s, i) => {
    const { known, target } = members[i];
    void s.end();
    if (!known.pending.every((m) => recorded.has(`${target.schema}\u0000${m.id}`))) return null;
    for (const m of known.pending) {
      s.applied.push(m.id);
      s.event('done', m, 0);
    }
    return s.outcome('succeeded', { unknown: [...known.unknown], version: versionOf([...known.applied, ...s.applied]) });
  });
}
