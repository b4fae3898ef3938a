import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { Fleet } from '../../src/fleet/fleet.js';
import { loadMigrations } from '../../src/migrate/files.js';
import { migrateUp, type MigrateUpOptions } from '../../src/migrate/up.js';
import { json, ownMigrateFleet, type MigrateEnv } from '../helpers/migrate-env.js';

/**
 * A shard on this machine shares its cores with tenantctl: without a --concurrency of the user's,
 * `migrate up` runs at most 2 targets per core on it (src/migrate/local-shard.ts). The test
 * fleet's shards listen on 127.0.0.1.
 */
const { env } = ownMigrateFleet();

/** migrateUp through the core function, counting the targets running at once. */
async function widest(e: MigrateEnv, opts: Partial<MigrateUpOptions>) {
  let running = 0;
  let max = 0;
  const { doc } = await migrateUp(
    { config: e.config, db: e.db, fleet: e.fleet, migrations: await loadMigrations(e.migrationsDir) },
    {
      concurrency: 8,
      ...opts,
      hooks: {
        onTargetStart: () => {
          running++;
          max = Math.max(max, running);
        },
        onTargetResult: () => {
          running--;
        },
      },
    },
  );
  return { doc, max };
}

describe('migrate up on a shard of this machine', () => {
  it('runs at most localShardTargets targets at once there; without it, up to the budget', async () => {
    const e = await env('width');
    await e.create(Array.from({ length: 6 }, (_, i) => ({ slug: `width-${i}`, model: 'schema' as const, shard: 'us1' })));
    // Slow enough that every target the fan-out allows is running at the same time.
    await e.addMigration('0004_slow.sql', 'select pg_sleep(0.4);\n');
    const narrow = await widest(e, { localShardTargets: 2 });
    expect(narrow.doc.ok).toBe(true);
    expect(narrow.doc.targets).toMatchObject({ total: 6, migrated: 6 });
    expect(narrow.max).toBe(2);

    await e.addMigration('0005_slow.sql', 'select pg_sleep(0.4);\n');
    const wide = await widest(e, {});
    expect(wide.doc.targets).toMatchObject({ total: 6, migrated: 6 });
    expect(wide.max).toBeGreaterThan(2);
  });

  it('a run that sends several targets per message uses half as many connections there (one per core), and the same width elsewhere', async () => {
    const e = await env('widthmsg');
    await e.create(Array.from({ length: 8 }, (_, i) => ({ slug: `wmsg-${i}`, model: 'schema' as const, shard: 'us1' })));
    // Slow enough that every message the batcher allows runs at the same time.
    await e.addMigration('0004_slow.sql', 'select pg_sleep(0.3);\n');
    const fleet = e.fleet as Fleet;
    // Connections of migrate up go through withLeafClient (shared messages, targets on their own path); both counted.
    const withClient = fleet.withClient.bind(fleet);
    const withLeafClient = fleet.withLeafClient.bind(fleet);
    let open = 0;
    let peak = 0;
    const counted = async (fn: (c: unknown) => Promise<unknown>, c: unknown) => {
      open++;
      peak = Math.max(peak, open);
      try {
        return await fn(c);
      } finally {
        open--;
      }
    };
    fleet.withClient = (async (shard: string, database: string, fn: (c: unknown) => Promise<unknown>) =>
      withClient(shard, database, (c) => counted(fn, c))) as Fleet['withClient'];
    fleet.withLeafClient = (async (shard: string, database: string, fn: (c: unknown) => Promise<unknown>) =>
      withLeafClient(shard, database, (c) => counted(fn, c))) as Fleet['withLeafClient'];
    try {
      // 4 targets per core on their own path would be 4 connections; shared messages take 2.
      const { doc } = await widest(e, { localShardTargets: 4, batchTargets: 2 });
      expect(doc.targets).toMatchObject({ total: 8, migrated: 8, failed: 0 });
      expect(peak).toBe(2);

      // Without this machine's limit, only the shard's budget bounds the messages.
      peak = 0;
      await e.addMigration('0005_slow.sql', 'select pg_sleep(0.3);\n');
      const wide = await widest(e, { batchTargets: 2 });
      expect(wide.doc.targets).toMatchObject({ total: 8, migrated: 8, failed: 0 });
      expect(peak).toBeGreaterThan(2);
    } finally {
      fleet.withClient = withClient;
      fleet.withLeafClient = withLeafClient;
    }
  });

  it('the CLI sets it to 2 per core unless --concurrency or TENANTCTL_CONCURRENCY is given, and records it in the run', async () => {
    const e = await env('widthcli');
    await e.create([{ slug: 'wcli-a', model: 'schema', shard: 'us1' }]);
    const perCore = 2 * availableParallelism();
    for (const [i, [args, extra, expected]] of (
      [
        [[], {}, perCore],
        [['--concurrency', '3'], {}, null],
        [[], { TENANTCTL_CONCURRENCY: '3' }, null],
      ] as const
    ).entries()) {
      await e.addMigration(`000${4 + i}_col.sql`, `alter table workspaces add column c${i} int;\n`);
      const r = await e.cli(['migrate', 'up', '--json', ...args], { env: extra });
      expect(r.code, r.stderr).toBe(0);
      expect(json(r).targets.migrated).toBe(1);
      const [run] = await e.runs();
      expect(run.id).toBe(json(r).run);
      expect(run.args.localShardTargets).toBe(expected);
    }
    const help = await e.cli(['migrate', 'up', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toMatch(
      /a shard on this machine \(localhost, 127\.x, ::1, a Unix socket\) runs at most 2 targets per core/,
    );
  });
});
