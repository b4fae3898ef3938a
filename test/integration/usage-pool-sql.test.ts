import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { perKeyUsageSql } from '../../src/placement/shared-tables-usage.js';

/**
 * The per-key pass of `usage` over a shared table (issue 19: measured against one hand-written
 * `group by key`) must size the table once, not once per key: on a pool of 1,000 tenants the
 * per-row pg_total_relation_size cost more than the scan of a small table. Read from the plan of
 * the real query, on a temporary table of the shared fleet (least-privileged role).
 */
const config = loadConfig({ file: inject('fleetConfigFile') });

interface PlanNode {
  'Parent Relationship'?: string;
  Output?: string[];
  Plans?: PlanNode[];
}

/** Output expressions of the nodes run per row: every node but the InitPlans and what is under them. */
function perRowOutputs(n: PlanNode): string[] {
  if (n['Parent Relationship'] === 'InitPlan') return [];
  return [...(n.Output ?? []), ...(n.Plans ?? []).flatMap(perRowOutputs)];
}

describe('usage over shared tables', () => {
  it("sizes each table once (an InitPlan), not per key, and splits its total by the keys' row bytes", async () => {
    const url = new URL(config.shards[0].url);
    const c = new pg.Client({ connectionString: url.toString() });
    await c.connect();
    try {
      await c.query('create temp table usage_sql_t (k uuid, v text)');
      await c.query(`insert into usage_sql_t select md5((g % 40)::text)::uuid, repeat('x', g % 7) from generate_series(1, 400) g`);
      const sql = perKeyUsageSql('usage_sql_t t', 'k');
      const { rows: plan } = await c.query(`explain (verbose, format json) ${sql}`, ['usage_sql_t']);
      const perRow = perRowOutputs(plan[0]['QUERY PLAN'][0].Plan).join(' ');
      expect(perRow).not.toMatch(/pg_total_relation_size|pg_partition_tree/);
      const { rows } = await c.query(sql, ['usage_sql_t']);
      const [size] = (await c.query(`select pg_total_relation_size('usage_sql_t')::text as b`)).rows;
      expect(rows).toHaveLength(40);
      expect(new Set(rows.map((r) => r.total))).toEqual(new Set([size.b]));
      expect(rows.reduce((n, r) => n + Number(r.rows), 0)).toBe(400);
    } finally {
      await c.end();
    }
  });
});
