import type { TenantRow } from '../catalog/tables.js';
import { getTenant } from '../catalog/tenants.js';
import { recordEvent } from '../catalog/events.js';
import { registerSecret } from '../config/redact.js';
import { TenantctlError, UsageError } from '../errors.js';
import { runTenantOperation } from '../operations/tenant-operation.js';
import { sweepRecords } from '../operations/sweep.js';
import { newPassword, rolePasswordState, setRolePassword } from '../placement/credentials.js';
import { ADMIN_DATABASE } from '../placement/databases.js';
import { tenantRole } from '../placement/placement.js';
import { resolveTenant, type Resolved } from '../placement/resolve.js';
import { cutRoleLogin, endRoleSessions, setRoleLogin, setRoleSearchPath } from '../placement/roles.js';
import type { LifecycleDeps } from '../operations/command-deps.js';
import { openMove } from '../move/record.js';

export interface NewCredentials {
  tenant: TenantRow;
  role: string;
  /** The new password: print it once, store it nowhere (registered with the redactor). */
  password: string;
  /** A password tenantctl had set before was replaced (--rotate). */
  rotated: boolean;
  /** Sessions of the role a rotation ended (opened with the old password). */
  sessionsEnded: number;
  /** What resolve prints for the tenant (URL with *** where the password goes). */
  resolved: Resolved;
  /**
   * The old placement a switched, not completed move keeps on another shard (its role is another
   * cluster's), when it got the same password: on --rotate (the old one no longer reads the
   * tenant's rows there, and a rollback finds the new one working), or when it had none.
   */
  keptSource?: { shard: string; role: string; sessionsEnded: number; error?: string };
}

/**
 * `tenant credentials <slug> [--rotate]`: a new random password for a schema or database
 * tenant's own role, under the tenant's lock. Without --rotate a role that already has one is
 * refused (exit 2): tenantctl never stored it, so it cannot show it again, and replacing it
 * silently would cut off a running application. Also sets the role's search_path in its
 * database (tenants made before it was set on create get it here). The event records that a
 * password was set or rotated, never the password.
 *
 * @example
 *   const c = await setTenantCredentials(deps, 'acme', { rotate: false });
 *   // c.password: 32 base64url characters
 */
export async function setTenantCredentials(deps: LifecycleDeps, slug: string, opts: { rotate?: boolean }): Promise<NewCredentials> {
  const first = await getTenant(deps.db, slug); // a missing tenant is exit 2 before any lock
  if (tenantRole(first) === null) {
    const serving = deps.config.servingRole.name;
    throw new UsageError(
      'NO_OWN_ROLE',
      `tenant "${slug}" is a ${first.model} tenant: it has no role of its own; its application connects as the serving role ${serving}, shared by every tenant of its pool`,
      `the serving role's password is servingRole.password in the config (tenantctl resolve ${slug} shows the URL)`,
    );
  }
  return runTenantOperation(deps, { kind: 'credentials', slug, sweep: () => sweepRecords(deps, slug), record: {} }, async (run) => {
    const t = run.tenant!;
    const role = tenantRole(t);
    if (role === null || (t.status !== 'active' && t.status !== 'suspended')) {
      throw new UsageError(
        'TENANT_STATE',
        `tenant "${slug}" is ${t.status} (${t.model})`,
        'only active or suspended schema and database tenants get credentials',
      );
    }
    const rotated = await deps.fleet.withClient(t.shard, ADMIN_DATABASE, async (c) => {
      const state = await rolePasswordState(c, role);
      if (!state.exists) {
        throw new TenantctlError(
          'TENANT_STATE',
          `role ${role} of tenant "${slug}" does not exist on shard ${t.shard}`,
          'run tenantctl audit to see what is wrong',
        );
      }
      if (state.hasPassword && !opts.rotate) {
        throw new UsageError(
          'CREDENTIALS_EXIST',
          `role ${role} already has a password${state.setAt ? ` (set by tenantctl at ${state.setAt})` : ''}; tenantctl never stores passwords, so it cannot print it again`,
          `pass --rotate to set a new one (the old one stops working at once): tenantctl tenant credentials ${slug} --rotate`,
        );
      }
      const password = newPassword();
      registerSecret(password);
      const ended = await putPassword(c, role, password, {
        replacing: state.hasPassword,
        active: t.status === 'active',
        searchPath: { database: t.database_name, schema: t.schema_name },
      });
      return { password, replaced: state.hasPassword, ended };
    });
    const keptSource = await keptSourceCredentials(deps, t, rotated.password, opts.rotate === true);
    await recordEvent(deps.db, {
      command: deps.command,
      action: rotated.replaced ? 'credentials rotated' : 'credentials set',
      result: 'ok',
      tenant: slug,
      details: { role, sessionsEnded: rotated.ended, ...(keptSource ? { keptSource } : {}) },
    });
    return {
      tenant: t,
      role,
      password: rotated.password,
      rotated: rotated.replaced,
      sessionsEnded: rotated.ended,
      resolved: resolveTenant(deps.config, t),
      ...(keptSource ? { keptSource } : {}),
    };
  });
}

/**
 * The kept old placement of a switched move on another shard: the same password on its role (a
 * role of that cluster; on the same shard it is the role just changed). Left out, a rotated
 * password kept reading the tenant's data there until move complete. With --rotate its sessions
 * are ended as at the tenant's placement; without, it gets the password only if it has none.
 */
async function keptSourceCredentials(
  deps: LifecycleDeps,
  t: TenantRow,
  password: string,
  rotate: boolean,
): Promise<NewCredentials['keptSource']> {
  const open = await openMove(deps.db, t.slug);
  if (open?.status !== 'switched') return undefined;
  const from = open.args.plan.from;
  const role = tenantRole({ slug: t.slug, model: from.model });
  if (role === null || from.shard === t.shard) return undefined;
  try {
    return await deps.fleet.withClient(from.shard, ADMIN_DATABASE, async (c) => {
      const state = await rolePasswordState(c, role);
      // Without --rotate a password is never replaced (the application still on the old URL keeps
      // logging in there, and is told on a write where the tenant lives now).
      if (!state.exists || (state.hasPassword && !rotate)) return undefined;
      const ended = await putPassword(c, role, password, { replacing: state.hasPassword, active: t.status === 'active' });
      return { shard: from.shard, role, sessionsEnded: ended };
    });
  } catch (err) {
    // The tenant's own role has the new password already: it is printed whatever happens here.
    return { shard: from.shard, role, sessionsEnded: 0, error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * The password on `role`; returns the sessions ended. Replacing one ends what the old password let
 * in: a session opened with it would keep its access, and could even set a password of its own
 * (any role may) over the new one. Its sessions ended, LOGIN off (cutRoleLogin), its sessions
 * ended again, so nothing logs in with the old one between the end and the change; LOGIN back on
 * after, unless the tenant is suspended (its LOGIN stays off).
 */
async function putPassword(
  c: Parameters<typeof endRoleSessions>[0],
  role: string,
  password: string,
  o: { replacing: boolean; active: boolean; searchPath?: { database: string; schema: string } },
): Promise<number> {
  const ended = o.replacing ? (await cutRoleLogin(c, role)) + (await endRoleSessions(c, role)) : 0;
  await setRolePassword(c, role, password);
  if (o.searchPath) await setRoleSearchPath(c, role, o.searchPath.database, o.searchPath.schema);
  if (o.replacing && o.active) await setRoleLogin(c, role, true);
  return ended;
}
