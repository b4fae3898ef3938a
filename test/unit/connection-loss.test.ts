import { describe, expect, it } from 'vitest';
import { isConnectionError } from '../../src/fleet/fleet.js';
import { toTargetError } from '../../src/migrate/target-errors.js';

describe('a connection lost mid-migration', () => {
  const lost = [
    Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
    Object.assign(new Error('terminating connection due to immediate shutdown command'), { code: '57P02' }),
    // What pg says for the next statement on a client whose socket already died (a shard stopped mid-run).
    new Error('Client has encountered a connection error and is not queryable'),
    new Error('Connection terminated unexpectedly'),
    Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
  ];

  it('is a lost connection, whichever way pg says it', () => {
    for (const err of lost) expect(isConnectionError(err), err.message).toBe(true);
    expect(isConnectionError(Object.assign(new Error('relation "x" does not exist'), { code: '42P01' }))).toBe(false);
  });

  it("is the target's UNREACHABLE (the shard, retried by the next run; not counted by --on-error stop), not MIGRATION_FAILED", () => {
    let broken = false;
    const ctx = { id: 'us2/tenant_schemas/t_a', deadlineBound: false, markBroken: () => (broken = true) };
    const e = toTargetError(lost[2], undefined, ctx);
    expect(e).toMatchObject({ code: 'UNREACHABLE', message: expect.stringMatching(/^lost the connection to us2\/tenant_schemas\/t_a: /) });
    expect(broken).toBe(true);
  });
});
