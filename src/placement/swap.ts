import { retargetFunctionPaths } from './function-paths.js';
import { xactLockInReach } from '../operations/lock-holder.js';
import type { Fleet } from '../fleet/fleet.js';
import { inTransaction } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import { TenantctlError } from '../errors.js';
import { DATABASE_ACL_LOCK_CLASSID } from '../operations/lock-ids.js';
import { ident } from '../sql.js';
import { ADMIN_DATABASE } from './databases.js';
import { tenantRoleName } from './naming.js';
import { MODEL_TRAITS, type CatalogPlacement } from './placement.js';
import { databaseExists } from './pool/rows.js';
import { actForRole, grantConnect } from './roles.js';
import { describeSessions, endDatabaseLockHolders, endSessions, type OpenSession } from './sessions.js';

/** A placement's names beside the tenant's own (its database and schema). */
export interface PlacementNames {
  database_name: string;
  schema_name: string;
}

export interface SwapOutcome {
  /** The tenant's sessions ended at the replaced placement. */
  endedSessions: number;
  /** How long the tenant's role could not connect (its CONNECT revoked for a database rename); 0 when never. */
  unreachableMs: number;
  /** What did not go as it should after the switch committed (the switch stands; the replaced placement stays fenced). */
  warnings: string[];
}

/** How many times a database rename is tried when a session slips in between (each waits up to 5 s in the server). */
const RENAME_ATTEMPTS = 3;
/** How long the schema swap may wait for a lock. */
const SWAP_LOCK_TIMEOUT_MS = 30_000;

/**
 * Put the placement built under `fresh` names where the tenant lives, under the tenant's own
 * names, and move the one it replaces to `away` names, so the application's URL, schema and role
 * are the same afterwards (restore --replace). Exclusive placements only.
 *  - Own schema: both renames and the migration records in ONE transaction, then the tenant
 *    role's sessions on the database are ended (they may hold plans of the replaced tables).
 *  - Own database: a database cannot be renamed with sessions on it, so the role's CONNECT on it
 *    is revoked, every session on it (and tenantctl's own idle connections) is ended, and both
 *    renames run in ONE transaction on the maintenance database; the new database already grants
 *    the role CONNECT. A session tenantctl may not end (a superuser's) fails the swap with its
 *    pid and role: CONNECT is granted back, nothing is renamed.
 * Either way the switch is one commit: `placementSwapped` tells a later sweep which side of it a
 * killed run was on.
 */
export async function swapPlacement(fleet: Fleet, t: CatalogPlacement, fresh: PlacementNames, away: PlacementNames): Promise<SwapOutcome> {
  if (MODEL_TRAITS[t.model].sharedTables) throw new Error(`a ${t.model} placement has no names of its own to swap`);
  return MODEL_TRAITS[t.model].ownDatabase ? swapDatabase(fleet, t, fresh, away) : swapSchema(fleet, t, fresh, away);
}

/** Has the swap to `away` committed (the replaced placement is under its away name)? */
export async function placementSwapped(fleet: Fleet, t: CatalogPlacement, away: PlacementNames): Promise<boolean> {
  if (MODEL_TRAITS[t.model].ownDatabase) return databaseExists(fleet, t.shard, away.database_name);
  if (!(await databaseExists(fleet, t.shard, t.database_name))) return false;
  const r = await fleet.withClient(t.shard, t.database_name, (c) =>
    c.query('select 1 from pg_namespace where nspname = $1', [away.schema_name]),
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * The tenant's access to its placement as before a swap that did not happen (a failed or killed
 * one may have revoked its role's CONNECT on its own database). Idempotent.
 */
export async function reopenPlacement(fleet: Fleet, t: CatalogPlacement): Promise<void> {
  if (!MODEL_TRAITS[t.model].ownDatabase || !(await databaseExists(fleet, t.shard, t.database_name))) return;
  await fleet.withTransaction(t.shard, ADMIN_DATABASE, (c) => grantConnect(c, t.database_name, tenantRoleName(t.slug)));
}

async function swapSchema(fleet: Fleet, t: CatalogPlacement, fresh: PlacementNames, away: PlacementNames): Promise<SwapOutcome> {
  await fleet.withTransaction(t.shard, t.database_name, async (c) => {
    await c.query(`set local lock_timeout = ${SWAP_LOCK_TIMEOUT_MS}`);
    await c.query(`alter schema ${ident(t.schema_name)} rename to ${ident(away.schema_name)}`);
    await c.query(`alter schema ${ident(fresh.schema_name)} rename to ${ident(t.schema_name)}`);
    // Its functions' frozen search_path named the schema it was built under.
    await retargetFunctionPaths(c, t.schema_name, fresh.schema_name, t.schema_name);
    // The migration records follow their schemas (keyed by name). Two statements: one would
    // collide with the unique key half-way.
    const track = `update tenantctl.schema_migrations set target_schema = $2 where target_schema = $1`;
    await c.query(track, [t.schema_name, away.schema_name]);
    await c.query(track, [fresh.schema_name, t.schema_name]);
  });
  // Switched. The tenant's sessions may hold plans of the replaced tables (fenced, soon dropped):
  // ended, the application reconnects to the restored ones under the same names.
  const role = tenantRoleName(t.slug);
  try {
    const { ended, stuck } = await fleet.withClient(t.shard, t.database_name, async (c) => {
      await actForRole(c, role);
      return endSessions(c, { database: t.database_name, role });
    });
    const warnings = stuck.length
      ? [`sessions of ${role} did not end: ${describeSessions(stuck)}; the replaced schema is fenced, they cannot write there`]
      : [];
    return { endedSessions: ended, unreachableMs: 0, warnings };
  } catch (err) {
    return { endedSessions: 0, unreachableMs: 0, warnings: [`the sessions of ${role} could not be ended: ${(err as Error).message}`] };
  }
}

async function swapDatabase(fleet: Fleet, t: CatalogPlacement, fresh: PlacementNames, away: PlacementNames): Promise<SwapOutcome> {
  const role = tenantRoleName(t.slug);
  const conns = fleet.connections(t.shard);
  // tenantctl's own pooled connections would block the renames like anyone's.
  await conns.closeIdle(t.database_name);
  await conns.closeIdle(fresh.database_name);
  return fleet.withClient(t.shard, ADMIN_DATABASE, async (c) => {
    // Ending a session of the tenant's role needs its privileges ("must be a member of the role
    // whose process is being terminated").
    await actForRole(c, role);
    const closedAt = Date.now();
    await setConnect(c, t.database_name, role, false);
    let ended = 0;
    try {
      for (let attempt = 1; ; attempt++) {
        const old = await endSessions(c, { database: t.database_name });
        const built = await endSessions(c, { database: fresh.database_name });
        ended += old.ended;
        // And a tenant's lock on either database, taken from elsewhere (sessions.ts); another
        // holder is waited for by the rename, as before.
        await endDatabaseLockHolders(c, t.database_name);
        await endDatabaseLockHolders(c, fresh.database_name);
        const stuck = [...old.stuck, ...built.stuck];
        if (stuck.length) throw sessionsOpen(t, stuck);
        try {
          await inTransaction(c, async () => {
            await c.query(`alter database ${ident(t.database_name)} rename to ${ident(away.database_name)}`);
            await c.query(`alter database ${ident(fresh.database_name)} rename to ${ident(t.database_name)}`);
          });
          break;
        } catch (err) {
          // 55006: a session connected between the ends and the rename (another tenantctl, a superuser).
          if ((err as { code?: string }).code !== '55006' || attempt >= RENAME_ATTEMPTS) throw err;
        }
      }
    } catch (err) {
      // Nothing was renamed: the tenant stays where it was, reachable again.
      await setConnect(c, t.database_name, role, true).catch(() => undefined);
      throw err;
    }
    fleet.knownDatabases.delete(`${t.shard}/${fresh.database_name}`);
    fleet.knownDatabases.add(`${t.shard}/${away.database_name}`);
    return { endedSessions: ended, unreachableMs: Date.now() - closedAt, warnings: [] };
  });
}

/** CONNECT on a database for a role, on or off, serialised like every GRANT on the database (roles.ts). */
async function setConnect(c: ShardClient, database: string, role: string, on: boolean): Promise<void> {
  if (on) return inTransaction(c, () => grantConnect(c, database, role));
  await inTransaction(c, async () => {
    await xactLockInReach(c, DATABASE_ACL_LOCK_CLASSID, database, `the grants of database ${database}`);
    await c.query(`revoke connect on database ${ident(database)} from ${ident(role)}`);
  });
}

function sessionsOpen(t: CatalogPlacement, stuck: OpenSession[]): TenantctlError {
  return new TenantctlError(
    'RESTORE_FAILED',
    `the database ${t.shard}/${t.database_name} cannot be renamed while sessions tenantctl may not end are open on it: ${describeSessions(stuck)}; nothing was switched, ${t.slug} is at ${t.database_name} as before`,
    'end those sessions (pg_terminate_backend as their role or a superuser), then run the restore again',
  );
}
