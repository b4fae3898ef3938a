import { describe, expect, it } from 'vitest';
import { withPoolPolicyTransaction } from '../../src/placement/pool/policy-transaction.js';

/** A fleet whose transactions fail with the given SQLSTATEs in turn, then succeed. */
function fleetFailing(codes: string[]) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    async withTransaction<T>(_s: string, _d: string, fn: (c: never) => Promise<T>): Promise<T> {
      const code = codes[calls++];
      if (code) throw Object.assign(new Error(`failed with ${code}`), { code });
      return fn(undefined as never);
    },
  };
}
const noSleep = async () => {};

describe('withPoolPolicyTransaction', () => {
  it('runs the setup again when PostgreSQL chose it as a deadlock victim', async () => {
    const fleet = fleetFailing(['40P01', '40P01']);
    await expect(withPoolPolicyTransaction(fleet, 's', 'd', async () => 'done', noSleep)).resolves.toBe('done');
    expect(fleet.calls).toBe(3);
  });

  it('does not retry a lock timeout: a long transaction holds the table, and the caller says so', async () => {
    const fleet = fleetFailing(['55P03']);
    await expect(withPoolPolicyTransaction(fleet, 's', 'd', async () => 'done', noSleep)).rejects.toMatchObject({ code: '55P03' });
    expect(fleet.calls).toBe(1);
  });

  it('gives up after five deadlocks in a row and rethrows the last', async () => {
    const fleet = fleetFailing(Array(9).fill('40P01'));
    await expect(withPoolPolicyTransaction(fleet, 's', 'd', async () => 'done', noSleep)).rejects.toMatchObject({ code: '40P01' });
    expect(fleet.calls).toBe(5);
  });
});
