import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` is pure and fast (no database); `integration` runs against one shared
 * fleet of embedded PostgreSQL clusters started by its globalSetup.
 *
 * @example
 *   npx vitest run --project unit
 */
export default defineConfig({
  test: {
    // vitest's default is one file at a time on a 2-core machine (cores - 1). Integration files
    // spend much of their time waiting on PostgreSQL and on child processes, and each one keeps
    // to its own catalog, databases and slugs (test/helpers/migrate-env.ts), so three run at once:
    // 850-952 s against 923-1,053 s with two for the whole suite on a fresh clone of this 2-core
    // machine (bench/README.md, "the test suite's wall"). The one failure three had that two did
    // not was a real fault (an autovacuum worker in a database dropped WITH (FORCE), fixed in
    // databases.ts), which more files at once only made likelier. TENANTCTL_TEST_WORKERS=2 for a
    // quieter machine, =1 to tell a race from a bug.
    maxWorkers: Number(process.env.TENANTCTL_TEST_WORKERS ?? 3),
    // Each worker process runs file after file instead of one new process per file: a new
    // process costs about half a CPU-second (start, then importing src/, pg and kysely again), and
    // the run is CPU-bound (35 small integration files: 17-21 CPU-s and 7-10% of wall less; see
    // bench/README.md, "the test suite's wall"). Test files keep no state outside their own
    // module: no mocks, no process.env writes, each file its own slugs, catalog and fleets.
    // TENANTCTL_TEST_ISOLATE=1 gives every file a fresh process again (to tell a leak from a bug).
    isolate: process.env.TENANTCTL_TEST_ISOLATE === '1',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          // Real clusters: initdb, connections and DDL take seconds, not milliseconds; two files run
          // at once on 2 cores, so a test that takes 40 s alone may take 80.
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
