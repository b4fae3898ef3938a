import type { KyselyPlugin } from 'kysely';

/**
 * A Kysely plugin that counts the statements compiled through it (raw `sql` ones included), for
 * tests of how many catalog round trips a command costs: `db.withPlugin(counter.plugin)`.
 */
export function statementCounter(): { plugin: KyselyPlugin; readonly count: number } {
  let count = 0;
  return {
    plugin: {
      transformQuery: (a) => {
        count++;
        return a.node;
      },
      transformResult: async (a) => a.result,
    },
    get count() {
      return count;
    },
  };
}
