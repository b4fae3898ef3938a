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
          // Real clusters: initdb, connections and DDL take seconds, not milliseconds.
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
