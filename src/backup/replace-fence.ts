import type { Config } from '../config/types.js';
import { TenantctlError } from '../errors.js';
import { assertPoolCopyAllowed } from '../placement/pool/visibility.js';
import type { Fleet } from '../fleet/fleet.js';
import { RESTORE_FENCE } from '../placement/fence-reasons.js';
import type { CatalogPlacement } from '../placement/placement.js';
import { ensurePoolFence, releasePoolFence, takePoolFence } from '../placement/pool/fence.js';
import { withPolicyDdl } from '../placement/pool/policy-transaction.js';
import { databaseExists } from '../placement/pool/rows.js';
import { fenceTables, unfenceTables } from '../placement/table-fence.js';
import { drivers } from '../placement/drivers.js';

/**
 * The fence a `restore --replace` puts on the tenant's live placement, recorded in its operations
 * row before it is taken: `advisory` (a pool tenant: a lock on a session of this process, gone
 * with it) or `trigger` (statement triggers on the placement's tables, which persist: a killed
 * restore's are lifted by the next restore's sweep, src/operations/sweep/restores.ts).
 */
export interface ReplaceFence {
  kind: 'advisory' | 'trigger';
  shard: string;
  database: string;
  schema: string;
  key: string;
}

export interface HeldReplaceFence {
  /** When writes began to be refused. */
  since: number;
  /** Lift it (idempotent; a trigger fence on a placement already swapped away stays with it). */
  lift(): Promise<void>;
}

/** How long taking the fence may wait for the tenant's in-flight writes. */
const FENCE_WAIT_MS = 30_000;

export function replaceFenceFor(t: CatalogPlacement): ReplaceFence {
  return { kind: drivers[t.model].fence.write, shard: t.shard, database: t.database_name, schema: t.schema_name, key: t.key };
}

/**
 * Refuse the tenant's writes at its live placement with the restore's message (SQLSTATE 25006;
 * reads go on), after its in-flight writes committed: nothing written from here on can be lost
 * by the swap. Exit 1 when the tenant's writes did not finish within 30 s; nothing is changed then.
 */
export async function fenceForReplace(fleet: Fleet, config: Config, rec: ReplaceFence): Promise<HeldReplaceFence> {
  try {
    if (rec.kind === 'advisory') {
      // The pool's fence policies (idempotent; CREATE POLICY locks the shared tables, so never
      // queue the pool behind a long transaction for it). First, what would refuse the load
      // (a table of another owner with FORCE ROW LEVEL SECURITY), named as such.
      const at = { shard: rec.shard, database: rec.database, schema: rec.schema };
      await withPolicyDdl(fleet, at, `installing the pool's fence policies on ${rec.shard}`, FENCE_WAIT_MS, async (c) => {
        await assertPoolCopyAllowed(c, rec.schema, config, 'load');
        await ensurePoolFence(c, rec.schema, config);
      });
      const conns = fleet.connections(rec.shard);
      const c = await conns.acquire(rec.database);
      try {
        await takePoolFence(c, rec.key, FENCE_WAIT_MS, RESTORE_FENCE);
      } catch (err) {
        // Closed, not reused: whatever it took goes with the session.
        c.tenantctlBroken = true;
        conns.release(c);
        throw err;
      }
      let held = true;
      return {
        since: Date.now(),
        async lift() {
          if (!held) return;
          held = false;
          await releasePoolFence(c, rec.key, RESTORE_FENCE).catch(() => {
            c.tenantctlBroken = true;
          });
          conns.release(c);
        },
      };
    }
    await fleet.withTransaction(rec.shard, rec.database, (c) => fenceTables(c, rec.schema, FENCE_WAIT_MS, RESTORE_FENCE));
    return { since: Date.now(), lift: () => liftReplaceFence(fleet, rec) };
  } catch (err) {
    if (err instanceof TenantctlError) throw err;
    const timedOut = (err as { code?: string }).code === '55P03';
    throw new TenantctlError(
      'RESTORE_FAILED',
      timedOut
        ? `the tenant's writes at ${rec.shard}/${rec.database}/${rec.schema} did not finish within ${FENCE_WAIT_MS / 1000} s, so they could not be paused for the restore; nothing was changed`
        : `pausing the tenant's writes at ${rec.shard}/${rec.database}/${rec.schema} failed: ${(err as Error).message}; nothing was changed`,
      timedOut ? 'a long transaction of the tenant is open; run the restore again when it has ended' : undefined,
    );
  }
}

/** Lift a recorded fence, whoever took it: triggers are dropped, an advisory one died with its session. Safe when the placement is gone. */
export async function liftReplaceFence(fleet: Fleet, rec: ReplaceFence): Promise<void> {
  if (rec.kind === 'advisory' || !(await databaseExists(fleet, rec.shard, rec.database))) return;
  await fleet.withTransaction(rec.shard, rec.database, (c) => unfenceTables(c, rec.schema));
}
