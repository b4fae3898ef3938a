import { describe, expect, it } from 'vitest';
import { ShardConnections } from '../../src/fleet/shard-connections.js';
import type { Shard } from '../../src/config/types.js';

// No server: a reserved slot is counted in the budget but never opened by tenantctl.
const shard = { name: 's1', url: 'postgres://u:p@127.0.0.1:1/x', maxConnections: 2 } as Shard;
const tick = () => new Promise((r) => setTimeout(r, 5));

describe('ShardConnections.reserveSlot (a connection another program opens, such as pg_dump)', () => {
  it('counts the slot in the budget: a third waits until one is given back', async () => {
    const conns = new ShardConnections(shard, 2);
    // Held by two other operations (each backup's own holder), not by the one that waits.
    const a = await conns.reserveSlot({});
    await conns.reserveSlot({});
    expect(conns.openCount).toBe(2);
    let third = false;
    const waiting = conns.reserveSlot().then((give) => {
      third = true;
      return give;
    });
    await tick();
    expect(third).toBe(false);
    a();
    a(); // giving back twice frees one slot, not two
    const give3 = await waiting;
    expect(third).toBe(true);
    expect(conns.openCount).toBe(2);
    expect(conns.peakOpen).toBe(2);
    give3();
    expect(conns.openCount).toBe(1);
  });

  it('fails at once, not forever, when the waiter itself holds every slot', async () => {
    const conns = new ShardConnections(shard, 1);
    await conns.reserveSlot();
    await expect(conns.reserveSlot()).rejects.toMatchObject({ code: 'SHARD_BUDGET_DEADLOCK' });
  });
});
