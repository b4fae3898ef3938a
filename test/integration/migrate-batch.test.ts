import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/fleet/connection-url.js';
import type { Fleet } from '../../src/fleet/fleet.js';
import { applyBatch, type BatchMember } from '../../src/migrate/apply-batch.js';
import { SilentMessage } from '../../src/migrate/apply-batch-message.js';
import { isConnectionError } from '../../src/fleet/fleet.js';
import { holderEntries } from '../../src/fleet/shard-connections.js';
import { loadMigrations } from '../../src/migrate/files.js';
import { pendingFor, readApplied } from '../../src/migrate/tracking.js';
import { TargetBatcher } from '../../src/migrate/target-batcher.js';
import { migrateUp } from '../../src/migrate/up.js';
import { migrateEnv, type MigrateEnv } from '../helpers/migrate-env.js';
import { sharedFleet } from '../helpers/shared-fleet.js';

/**
 * Several schema targets of one database in one message (apply-batch.ts, target-batcher.ts): each
 * in its own transaction with its tracking row; a failing member leaves those before it committed
 * and sends itself and those after it down their own path. On the shared fleet, in an environment
 * of its own.
 */
const run = randomBytes(2).toString('hex');
const slugs = Array.from({ length: 6 }, (_, i) => `bt${run}-${i}`);
const schemaOf = (slug: string) => `t_${slug.replace(/-/g, '_')}`;
let e: MigrateEnv;
let client: pg.Client;

beforeAll(async () => {
  e = await migrateEnv(sharedFleet(), `bt${run}`);
  await e.create(slugs.map((slug) => ({ slug, model: 'schema' as const, shard: 'us1' })));
  const shard = e.config.shards.find((s) => s.name === 'us1')!;
  client = new pg.Client({ connectionString: databaseUrl(shard.url, shard.tenantDatabase) });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await e?.close();
});

/** The batch members for `schemas`, with the state migrate up would have read, under their tenants' locks. */
async function members(schemas: string[]): Promise<BatchMember[]> {
  const migrations = await loadMigrations(e.migrationsDir);
  const rows = await readApplied(client, schemas);
  return schemas.map((schema) => {
    const own = rows.filter((r) => r.schema === schema);
    const r = pendingFor(migrations, own);
    return {
      target: { model: 'schema', shard: 'us1', database: client.database!, schema },
      known: { applied: own.map((x) => x.name), pending: r.pending, unknown: r.unknown, tracked: true },
      opts: { config: e.config, tenantLocked: true },
    };
  });
}

/** Counts the messages `fn` sends through `c`. */
async function counted<T>(c: pg.Client, fn: () => Promise<T>): Promise<{ out: T; messages: string[] }> {
  const messages: string[] = [];
  const query = c.query.bind(c);
  (c as unknown as { query: unknown }).query = (text: unknown, ...rest: unknown[]) => {
    messages.push(typeof text === 'string' ? text : String((text as { text?: string }).text));
    return (query as (...a: unknown[]) => unknown)(text, ...rest);
  };
  try {
    return { out: await fn(), messages };
  } finally {
    (c as unknown as { query: unknown }).query = query;
  }
}

const hasColumn = async (schema: string, column: string) =>
  (
    await client.query(
      `select 1 from information_schema.columns where table_schema = $1 and table_name = 'workspaces' and column_name = $2`,
      [schema, column],
    )
  ).rowCount === 1;
const recorded = async (schema: string, id: string) =>
  (await client.query(`select 1 from tenantctl.schema_migrations where target_schema = $1 and name = $2`, [schema, id])).rowCount === 1;

describe('several targets in one message', () => {
  it('applies each member in its own transaction with its tracking row, in ONE message, and leaves the connection clean', async () => {
    await e.addMigration('0004_one.sql', 'alter table workspaces add column one_at timestamptz;\n');
    const schemas = slugs.slice(0, 3).map(schemaOf);
    const { out, messages } = await counted(client, async () => applyBatch(client, await members(schemas)));
    // readApplied's two reads, then the batch itself.
    expect(messages.filter((m) => m.includes('one_at'))).toHaveLength(1);
    expect(out.map((o) => o?.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(out.map((o) => o?.applied)).toEqual([['0004_one'], ['0004_one'], ['0004_one']]);
    for (const s of schemas) {
      expect(await hasColumn(s, 'one_at')).toBe(true);
      expect(await recorded(s, '0004_one')).toBe(true);
    }
    expect((await client.query('show search_path')).rows[0].search_path).toBe('"$user", public');
    expect((await client.query('select now() = statement_timestamp() as fresh')).rows[0].fresh).toBe(true);
  });

  it('a failing member: those before it stay committed; it and those after it return null (their own path), nothing of theirs applied', async () => {
    await e.addMigration('0005_two.sql', 'alter table workspaces add column two_at timestamptz;\n');
    const schemas = slugs.slice(0, 4).map(schemaOf);
    // The third already has the column: its ALTER fails, and PostgreSQL skips the rest of the message.
    await client.query(`alter table ${schemas[2]}.workspaces add column two_at timestamptz`);
    const out = await applyBatch(client, await members(schemas));
    expect(out.map((o) => o?.status ?? null)).toEqual(['succeeded', 'succeeded', null, null]);
    expect(await recorded(schemas[1], '0005_two')).toBe(true);
    expect(await recorded(schemas[2], '0005_two')).toBe(false);
    expect(await recorded(schemas[3], '0005_two')).toBe(false);
    expect(await hasColumn(schemas[3], 'two_at')).toBe(false);
    // No transaction left open on the connection.
    expect((await client.query('select now() = statement_timestamp() as fresh')).rows[0].fresh).toBe(true);
    await client.query(`alter table ${schemas[2]}.workspaces drop column two_at`);
  });

  it('migrate up with batchTargets sends several targets per message, reports each, and a failing one precisely', async () => {
    const messages: string[] = [];
    const fleet = e.fleet as Fleet;
    const restore = watchMessages(fleet, 'three_at', (sql) => messages.push(sql));
    try {
      const up = async () =>
        migrateUp(
          { config: e.config, db: e.db, fleet, migrations: await loadMigrations(e.migrationsDir) },
          // One connection: the targets that wait for it go together.
          { concurrency: 8, localShardTargets: 1, batchTargets: 4, onError: 'continue' },
        );
      // 0005 goes to the four targets that lack it, 0004 and 0005 to the others, then 0006 everywhere.
      await up();
      await e.addMigration('0006_three.sql', 'alter table workspaces add column three_at timestamptz;\n');
      // The state read, the tracking-table check and the shared messages never run as a holder of
      // their own (Fleet.withLeafClient): entering one makes every later promise pay a hook.
      const entered = holderEntries;
      const { doc } = await up();
      expect(holderEntries - entered).toBe(0);
      expect(doc.targets).toMatchObject({ total: 6, migrated: 6, failed: 0 });
      expect(doc.results.every((r) => r.status === 'succeeded' && r.applied?.join() === '0006_three')).toBe(true);
      expect(messages.length).toBeLessThan(6);
      expect(messages.some((m) => m.split('three_at').length - 1 > 1)).toBe(true);
      for (const s of slugs.map(schemaOf)) expect(await recorded(s, '0006_three')).toBe(true);

      // A member that fails runs again alone: the error names its file, the others are migrated.
      await e.addMigration('0007_four.sql', 'alter table workspaces add column four_at timestamptz;\n');
      await client.query(`alter table ${schemaOf(slugs[3])}.workspaces add column four_at timestamptz`);
      const failed = (await up()).doc;
      expect(failed.targets).toMatchObject({ total: 6, migrated: 5, failed: 1 });
      const bad = failed.results.find((r) => r.status === 'failed')!;
      expect(bad.tenant).toBe(slugs[3]);
      expect(bad.error).toMatchObject({ code: 'MIGRATION_FAILED', migration: '0007_four' });
      expect(bad.error?.message).toMatch(/four_at/);
      for (const [i, s] of slugs.map(schemaOf).entries()) expect(await recorded(s, '0007_four')).toBe(i !== 3);
    } finally {
      restore();
    }
  });
});

describe('targets in flight', () => {
  it('a batched run holds at most maxTargetsInFlight targets under their tenant locks at once, whatever concurrency × batch size', async () => {
    // The last test left slugs[3] with the column of 0007 added by hand: drop it, so every target has work.
    await client.query(`alter table ${schemaOf(slugs[3])}.workspaces drop column if exists four_at`);
    await e.addMigration('0008_five.sql', 'alter table workspaces add column five_at timestamptz;\n');
    let inFlight = 0;
    let peak = 0;
    const { doc } = await migrateUp(
      { config: e.config, db: e.db, fleet: e.fleet as Fleet, migrations: await loadMigrations(e.migrationsDir) },
      {
        // Two connections of four targets each would let 8 targets (all 6 here) start at once.
        concurrency: 2,
        localShardTargets: 2,
        batchTargets: 4,
        maxTargetsInFlight: 3,
        onError: 'continue',
        hooks: {
          // A target takes its tenant's lock after it starts and releases it before its result.
          onTargetStart: () => {
            inFlight++;
            peak = Math.max(peak, inFlight);
          },
          onTargetResult: () => {
            inFlight--;
          },
        },
      },
    );
    expect(doc.targets).toMatchObject({ total: 6, migrated: 6, failed: 0 });
    expect(peak).toBe(3);
    for (const s of slugs.map(schemaOf)) expect(await recorded(s, '0008_five')).toBe(true);
  });
});

describe('the shared message (SilentMessage): counts what completed, keeps the first error, builds no result', () => {
  const send = (c: pg.Client, text: string) => {
    const m = new SilentMessage(text);
    c.query(m);
    return m;
  };
  const fresh = async () => (await client.query('select now() = statement_timestamp() as fresh')).rows[0].fresh;

  it('resolves with the number of statements that completed', async () => {
    const s = schemaOf(slugs[0]);
    const m = send(client, `begin; select where concat(set_config('search_path', '${s}, public', true)) is null; select 1; commit;`);
    expect(await m.done).toBe(4);
    expect(await fresh()).toBe(true);
  });

  it('a failing statement mid-message: rejects with its error, counts only the statements before it, and the connection goes on', async () => {
    const m = send(client, 'begin; select 1; select 1/0; select 2; commit;');
    await expect(m.done).rejects.toMatchObject({ code: '22012' });
    expect(m.completed).toBe(2);
    // The rest of the message was skipped: its transaction is still open (aborted) until rolled back.
    await expect(client.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    await client.query('rollback');
    expect(await fresh()).toBe(true);
  });

  it('an error in the last member of a batch: the members before it commit, it takes its own path', async () => {
    await e.addMigration('0009_six.sql', 'alter table workspaces add column six_at timestamptz;\n');
    const schemas = slugs.slice(0, 3).map(schemaOf);
    await client.query(`alter table ${schemas[2]}.workspaces add column six_at timestamptz`);
    const out = await applyBatch(client, await members(schemas));
    expect(out.map((o) => o?.status ?? null)).toEqual(['succeeded', 'succeeded', null]);
    expect(out[0]).toMatchObject({ applied: ['0009_six'], pending: [], version: '0009_six', attempts: 1 });
    expect(await recorded(schemas[1], '0009_six')).toBe(true);
    expect(await recorded(schemas[2], '0009_six')).toBe(false);
    expect(await fresh()).toBe(true);
    await client.query(`alter table ${schemas[2]}.workspaces drop column six_at`);
  });

  it('a lost connection rejects with a connection error, and applyBatch throws it (every member unreachable)', async () => {
    const shard = e.config.shards.find((x) => x.name === 'us1')!;
    const victim = async () => {
      const c = new pg.Client({ connectionString: databaseUrl(shard.url, shard.tenantDatabase) });
      c.on('error', () => {});
      await c.connect();
      return { c, pid: (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number };
    };
    const kill = async (pid: number) => {
      await untilRunning(pid);
      await client.query('select pg_terminate_backend($1)', [pid]);
    };
    const a = await victim();
    const b = await victim();
    try {
      const m = send(a.c, 'select 1; select pg_sleep(30); select 1;');
      // Handled at once: the FATAL may arrive before pg_terminate_backend's own answer does, and a
      // rejection nobody handles by then fails the whole run (CI, stop 28).
      const outcome = m.done.then(
        () => null,
        (x: unknown) => x,
      );
      await kill(a.pid);
      expect(isConnectionError(await outcome)).toBe(true);
      expect(m.completed).toBe(1);
      // Through applyBatch: thrown, not taken for a failing member (whose fellows would be read back).
      await e.addMigration('0010_slow.sql', 'select pg_sleep(30);\n');
      const batch = applyBatch(b.c, await members([schemaOf(slugs[4]), schemaOf(slugs[5])]));
      const thrown = batch.then(
        () => null,
        (x: unknown) => x,
      );
      await kill(b.pid);
      expect(isConnectionError(await thrown)).toBe(true);
    } finally {
      await a.c.end().catch(() => {});
      await b.c.end().catch(() => {});
    }
  });
});

describe('a freed connection', () => {
  it('takes the targets queued a few promise hops after it was freed, not only the first of them', async () => {
    await e.addMigration('0011_seven.sql', 'alter table workspaces add column seven_at timestamptz;\n');
    const sizes: number[] = [];
    const fleet = e.fleet as Fleet;
    const restore = watchMessages(fleet, 'seven_at', (sql) => sizes.push(sql.split('seven_at').length - 1));
    try {
      // One connection, up to 8 targets a message. In a run, a message's results release their
      // targets and start the next ones, each a few promise hops after the one before (its lock,
      // taken ahead, then its submit): as here.
      const batcher = new TargetBatcher(fleet, 8, () => 1, 8);
      // Only this file: the tests above leave others pending (a pg_sleep among them).
      const all = await members(slugs.map(schemaOf));
      for (const m of all) m.known.pending = m.known.pending.filter((f) => f.id === '0011_seven');
      const [first, ...rest] = all;
      const after = batcher.submit('us1', first).then((o) =>
        Promise.all([
          o,
          ...rest.map(async (m, i) => {
            for (let hop = 0; hop < 3 * i; hop++) await Promise.resolve();
            return batcher.submit('us1', m);
          }),
        ]),
      );
      const outcomes = await after;
      expect(outcomes.map((o) => o?.status)).toEqual(slugs.map(() => 'succeeded'));
      // Taken at once, the freed connection held only the first of them: [1, 1, 4].
      expect(sizes).toEqual([1, 5]);
      for (const s of slugs.map(schemaOf)) expect(await recorded(s, '0011_seven')).toBe(true);
    } finally {
      restore();
    }
  });
});

describe('targets on their own path', () => {
  it('a run of database and pool targets (one connection each, no shared message) enters no holder either', async () => {
    const own = await migrateEnv(sharedFleet(), `lf${run}`);
    try {
      await own.create([
        { slug: `lf${run}-d`, model: 'database', shard: 'us1' },
        { slug: `lf${run}-p`, model: 'pool', shard: 'us1' },
      ]);
      await own.addMigration('0004_leaf.sql', 'alter table workspaces add column leaf_at timestamptz;\n');
      const entered = holderEntries;
      const { doc } = await migrateUp(
        { config: own.config, db: own.db, fleet: own.fleet as Fleet, migrations: await loadMigrations(own.migrationsDir) },
        { concurrency: 4, onError: 'continue' },
      );
      expect(doc.targets).toMatchObject({ total: 2, migrated: 2, failed: 0 });
      expect(holderEntries - entered).toBe(0);
    } finally {
      await own.close();
    }
  });
});

/**
 * Calls `seen` with the text of every query or shared message (a Submittable with its text:
 * apply-batch-message.ts) containing `marker` sent through the fleet's connections (withClient,
 * and withLeafClient, which the shared messages use); returns what puts the fleet's own back.
 */
function watchMessages(fleet: Fleet, marker: string, seen: (sql: string) => void): () => void {
  const watched = (c: pg.ClientBase) =>
    new Proxy(c, {
      get: (t, k) =>
        k === 'query'
          ? (text: unknown, ...rest: unknown[]) => {
              const sql = typeof text === 'string' ? text : (text as { text?: unknown } | undefined)?.text;
              if (typeof sql === 'string' && sql.includes(marker)) seen(sql);
              return (t.query as (...a: unknown[]) => unknown).call(t, text, ...rest);
            }
          : Reflect.get(t, k, t),
    });
  const withClient = fleet.withClient.bind(fleet);
  const withLeafClient = fleet.withLeafClient.bind(fleet);
  fleet.withClient = ((shard: string, database: string, fn: (c: pg.ClientBase) => Promise<unknown>) =>
    withClient(shard, database, (c) => fn(watched(c)))) as Fleet['withClient'];
  fleet.withLeafClient = ((shard: string, database: string, fn: (c: pg.ClientBase) => Promise<unknown>) =>
    withLeafClient(shard, database, (c) => fn(watched(c)))) as Fleet['withLeafClient'];
  return () => {
    fleet.withClient = withClient;
    fleet.withLeafClient = withLeafClient;
  };
}

/** Until the backend `pid` sleeps in the message's pg_sleep (the statements before it completed). */
async function untilRunning(pid: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    const r = await client.query(`select 1 from pg_stat_activity where pid = $1 and wait_event = 'PgSleep'`, [pid]);
    if (r.rowCount === 1) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`backend ${pid} never ran the message`);
}
