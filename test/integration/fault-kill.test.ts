import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageFor } from '../../src/backup/regions.js';
import type { Model } from '../../src/config/types.js';
import { replicationName } from '../../src/move/replication.js';
import { FAULT_POINTS, type FaultPointName } from '../../src/operations/fault-points.js';
import { FENCE_TRIGGER, SWITCH_TRIGGER } from '../../src/placement/table-fence.js';
import { FENCE_SCHEMA } from '../../src/placement/pool/fence.js';
import { SWITCHED_TABLE } from '../../src/placement/pool/switch-fence.js';
import { sweepFleet } from '../../src/operations/sweep.js';
import { appUrl } from '../helpers/app-url.js';
import { json, migrateEnv, sleep, until, type MigrateEnv } from '../helpers/migrate-env.js';
import { seed, tenant } from '../helpers/seed.js';
import { sharedFleet } from '../helpers/shared-fleet.js';

/**
 * Issue 18 (Tests): SIGKILL at every named fault point of every operation (src/operations/
 * fault-points.ts), one row per point, while a steady writer uses the tenant through `resolve`'s
 * URL; then the command the CLI names is run again. Each time: the tenant ends where the catalog
 * says (readable through a fresh `resolve`), every write the writer saw committed is there, no
 * `running` record, nothing left behind (partial archives, copies, schemas, databases, pool rows,
 * replication objects; the sweep's own finder and `doctor` find nothing of the tenant). A point
 * without a row fails the first test: adding a point adds a row here. On the shared fleet, in an
 * environment of its own; rows run concurrently (each its own tenant).
 */
let e: MigrateEnv;
let started = 0;
beforeAll(async () => {
  started = Date.now();
  e = await migrateEnv(sharedFleet(), 'fkill');
});
afterAll(async () => {
  await e?.close();
  console.log(`fault-kill.test.ts: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

/** What a row's tenant is before the command, and where the catalog must say it ends. */
type End = { gone: true } | { shard: string; model: Model };

interface Row {
  /** The model of the tenant the command works on (spread over pool, schema, database). */
  model: Model;
  /** The command, given the row's slug and (for a restore) a backup of it; re-run as is to finish. */
  command: (slug: string, backup: string) => string[];
  /** The command the CLI names to finish it, when not the same command again. */
  finish?: (slug: string) => string[];
  /** Set-up the command needs besides the tenant: a backup of it, or a finished move. */
  needs?: 'backup' | 'moved';
  /** Where the tenant ends. */
  end: End;
  /** A restore --as ends with a second tenant (`<slug>-as`), made from the backup. */
  restoredAs?: boolean;
  /**
   * The writer's committed writes that must be there at the end: all of them, or (restore
   * --replace) none: the replace gives the tenant the backup's rows by design; the writes made
   * meanwhile are in its safety backup. The rows written before the backup always are.
   */
  keeps?: 'all' | 'backup-only';
  /** Why a row is not run. */
  skip?: string;
}

const us2 = (model: Model) => ({ shard: 'us2', model }) as const;
const move =
  (to: Model, online = false) =>
  (slug: string) => ['move', slug, '--to-shard', 'us2', '--to-model', to, ...(online ? ['--online'] : []), '--yes'];

/** One row per fault point (the test below fails when the registry has a point with no row). */
const ROWS: Record<FaultPointName, Row> = {
  'create.prepared': {
    model: 'database',
    command: (s) => ['tenant', 'create', s, '--model', 'database', '--shard', 'us1'],
    end: { shard: 'us1', model: 'database' },
  },
  'create.migrated': {
    model: 'schema',
    command: (s) => ['tenant', 'create', s, '--model', 'schema', '--shard', 'us1'],
    end: { shard: 'us1', model: 'schema' },
  },
  'delete.backed-up': { model: 'pool', command: (s) => ['tenant', 'delete', s, '--yes'], end: { gone: true } },
  'delete.removed': { model: 'schema', command: (s) => ['tenant', 'delete', s, '--yes'], end: { gone: true } },
  'backup.copy': { model: 'database', command: (s) => ['backup', 'create', s], end: { shard: 'us1', model: 'database' } },
  'backup.written': { model: 'pool', command: (s) => ['backup', 'create', s], end: { shard: 'us1', model: 'pool' } },
  'restore.fenced': {
    model: 'schema',
    needs: 'backup',
    command: (_s, b) => ['restore', b, '--replace', '--yes'],
    end: { shard: 'us1', model: 'schema' },
    keeps: 'backup-only',
  },
  'restore.safety-backup': {
    model: 'pool',
    needs: 'backup',
    command: (_s, b) => ['restore', b, '--replace', '--yes'],
    end: { shard: 'us1', model: 'pool' },
    keeps: 'backup-only',
  },
  'restore.loaded': {
    model: 'database',
    needs: 'backup',
    command: (s, b) => ['restore', b, '--as', `${s}-as`],
    end: { shard: 'us1', model: 'database' },
    restoredAs: true,
  },
  'restore.committed': {
    model: 'pool',
    needs: 'backup',
    command: (s, b) => ['restore', b, '--as', `${s}-as`],
    end: { shard: 'us1', model: 'pool' },
    restoredAs: true,
  },
  'restore.switched': {
    model: 'database',
    needs: 'backup',
    command: (_s, b) => ['restore', b, '--replace', '--yes'],
    end: { shard: 'us1', model: 'database' },
    keeps: 'backup-only',
  },
  'move.after-preflight': { model: 'pool', command: move('pool'), end: us2('pool') },
  'move.after-build': { model: 'schema', command: move('database'), end: us2('database') },
  'move.after-fence': { model: 'schema', command: move('schema', true), end: us2('schema') },
  'move.copy': { model: 'database', command: move('database', true), end: us2('database') },
  'move.after-copy': { model: 'database', command: move('pool'), end: us2('pool') },
  'move.after-catch-up': { model: 'pool', command: move('pool', true), end: us2('pool') },
  'move.verify': { model: 'schema', command: move('schema'), end: us2('schema') },
  'move.after-verify': { model: 'database', command: move('database', true), end: us2('database') },
  'move.before-commit': { model: 'schema', command: move('pool'), end: us2('pool') },
  'move.switch-fence': { model: 'pool', command: move('pool'), end: us2('pool') },
  'move.after-switch': { model: 'database', command: move('schema'), end: us2('schema') },
  'pitr.recovery': {
    model: 'pool',
    command: (s) => ['restore', s, '--at', new Date().toISOString(), '--as', `${s}-at`],
    end: { shard: 'us1', model: 'pool' },
    skip: 'needs a fleet that archives WAL (archive_mode needs a restart, the shared fleet does not archive); pitr.test.ts kills a restore --at at this point on its own archiving fleet and checks the next command removes the scratch cluster',
  },
  'move-rollback.before-remove': {
    model: 'schema',
    needs: 'moved',
    command: (s) => ['move', 'rollback', s, '--yes'],
    end: { shard: 'us1', model: 'schema' },
  },
};

const slugOf = (point: string) => `fk-${point.replace(/[^a-z]+/g, '-')}`;

describe('the table', () => {
  it('has one row per fault point of the registry, and no other', () => {
    expect(Object.keys(ROWS).sort()).toEqual(Object.keys(FAULT_POINTS).sort());
  });
});

/** A steady writer through the application's URL: one task a time, each recorded once its commit returned. */
class Writer {
  readonly committed: string[] = [];
  private stopped = false;
  private n = 0;
  private done: Promise<void> = Promise.resolve();
  constructor(
    private readonly app: { url: string; schema: string },
    private readonly t: { key: string; model: string },
    private readonly project: string,
    private readonly tag: string,
  ) {}

  start(): this {
    this.done = this.loop();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  private async loop(): Promise<void> {
    let c: pg.Client | undefined;
    while (!this.stopped) {
      try {
        if (!c) {
          c = new pg.Client({ connectionString: this.app.url, query_timeout: 5000, connectionTimeoutMillis: 3000 });
          c.on('error', () => undefined);
          await c.connect();
          if (this.t.model === 'pool') await c.query('select set_config($1, $2, false)', [e.config.rls.setting, this.t.key]);
        }
        const title = `${this.tag}-${++this.n}`;
        await c.query(
          `insert into "${this.app.schema}".tasks (tenant_id, id, project_id, title, status) values ($1, gen_random_uuid(), $2, $3, 'todo')`,
          [this.t.key, this.project, title],
        );
        this.committed.push(title);
      } catch {
        // Refused (a fence, a suspended or removed placement): not committed; try again on a new connection.
        await c?.end().catch(() => undefined);
        c = undefined;
      }
      await sleep(40);
    }
    await c?.end().catch(() => undefined);
  }
}

/** The tenant's task titles through a fresh `resolve` URL (the application's view). */
async function titlesThroughResolve(slug: string): Promise<Set<string>> {
  return titlesAt(await appUrl(e, slug), (await tenant(e, slug))!);
}

/** The tenant's task titles through `app`, a URL `resolve` printed. */
async function titlesAt(app: { url: string; schema: string }, t: { key: string; model: string }): Promise<Set<string>> {
  const c = new pg.Client({ connectionString: app.url });
  await c.connect();
  try {
    if (t.model === 'pool') await c.query('select set_config($1, $2, false)', [e.config.rls.setting, t.key]);
    const r = await c.query<{ title: string }>(`select title from "${app.schema}".tasks`);
    return new Set(r.rows.map((x) => x.title));
  } finally {
    await c.end();
  }
}

/** Run the command paused at `point`, wait until it is paused there, SIGKILL it. */
async function killAt(point: string, args: string[]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tenantctl-fk-'));
  const marker = join(dir, 'paused');
  let pid = 0;
  const run = e.cli(args, { env: { TENANTCTL_FAULT: `${point}:pause`, TENANTCTL_FAULT_PAUSED_FILE: marker }, onSpawn: (p) => (pid = p) });
  let exited: Awaited<typeof run> | undefined;
  // Both outcomes handled here: a spawn failure surfaces at `await run` below, not as an unhandled rejection.
  void run.then(
    (r) => (exited = r),
    () => undefined,
  );
  try {
    // The marker's whole content (a read may come between its creation and its write).
    await until(async () => (existsSync(marker) && (await readFile(marker, 'utf8')) === point) || exited, 120_000, 50);
    if (exited) throw new Error(`${args.join(' ')} ended before ${point} (exit ${exited.code}): ${exited.stdout}${exited.stderr}`);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What is left of the tenant anywhere in the fleet, besides what the catalog says it has. */
async function leftovers(slug: string, key: string | undefined): Promise<string[]> {
  const t = await tenant(e, slug);
  const left: string[] = [];
  const like = `t\\_${slug.replace(/-/g, '\\_')}%`;
  // Another tenant's names that share the prefix (a restore's `<slug>-as`) are not this one's.
  const others = await e.db.selectFrom('tenants').select(['database_name', 'schema_name']).where('slug', '!=', slug).execute();
  const theirs = new Set(others.flatMap((o) => [o.database_name, o.schema_name]));
  for (const s of e.config.shards) {
    const dbs = (await e.q(s.name, 'postgres', 'select datname from pg_database where datname like $1', [like]))
      .map((r) => r.datname)
      .filter((n) => !theirs.has(n));
    const ownDb = t && t.model === 'database' && t.shard === s.name ? [t.database_name] : [];
    if (dbs.sort().join() !== ownDb.join()) left.push(`${s.name}: databases ${dbs.join(', ')}`);
    const schemas = await e
      .q(s.name, `schemas_${e.name}`, 'select nspname from pg_namespace where nspname like $1', [like])
      .then((r) => r.filter((x) => !theirs.has(x.nspname)))
      .catch(() => [] as { nspname: string }[]);
    const ownSchema = t && t.model === 'schema' && t.shard === s.name ? [t.schema_name] : [];
    if (schemas.map((r) => r.nspname).join() !== ownSchema.join())
      left.push(`${s.name}: schemas ${schemas.map((r) => r.nspname).join(', ')}`);
    if (key) {
      const rows = await e
        .q(s.name, `pool_${e.name}`, 'select count(*)::int as n from app.tasks where tenant_id = $1', [key])
        .catch(() => [{ n: 0 }]);
      const own = t?.model === 'pool' && t.shard === s.name;
      if (!own && rows[0].n > 0) left.push(`${s.name}: ${rows[0].n} pool rows of key ${key}`);
    }
  }
  const moves = await e.db.selectFrom('operations').select('id').where('kind', '=', 'move').where('tenant_slug', '=', slug).execute();
  const names = moves.map((m) => replicationName(Number(m.id)));
  if (names.length) {
    for (const s of e.config.shards) {
      for (const [what, sql] of [
        ['slot', 'select slot_name as n from pg_replication_slots where slot_name = any($1)'],
        ['publication', 'select pubname as n from pg_publication where pubname = any($1)'],
        ['subscription', 'select subname as n from pg_subscription where subname = any($1)'],
      ]) {
        for (const r of await e.q(s.name, 'postgres', sql, [names]).catch(() => [])) left.push(`${s.name}: ${what} ${r.n}`);
      }
    }
  }
  const store = storageFor(e.config, 'us-east').location;
  const hidden = (await readdir(join(store, slug)).catch(() => [] as string[])).filter((n) => n.startsWith('.'));
  if (hidden.length) left.push(`partial archives ${hidden.join(', ')}`);
  const running = await e.db
    .selectFrom('operations')
    .select(['id', 'kind'])
    .where('tenant_slug', '=', slug)
    .where('status', '=', 'running')
    .execute();
  for (const r of running) left.push(`${r.kind} ${r.id} still running`);
  const { found } = await sweepFleet({ config: e.config, db: e.db, fleet: e.fleet, command: 'test' }, { dryRun: true });
  for (const f of found.filter((x) => x.tenant === slug)) left.push(`sweep finds: ${f.what}`);
  return left;
}

const ok = (r: { code: number | null; stdout: string; stderr: string }, what: string) =>
  expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(0);

describe.concurrent('SIGKILL at every fault point, then the command again', () => {
  for (const [point, row] of Object.entries(ROWS) as [FaultPointName, Row][]) {
    it.skipIf(Boolean(row.skip))(`${point} (${row.model})${row.skip ? ` [skipped: ${row.skip}]` : ''}`, { timeout: 300_000 }, async () => {
      const slug = slugOf(point);
      const creating = point.startsWith('create.');
      let writer: Writer | undefined;
      let backup = '';
      const before = new Set<string>();
      if (!creating) {
        await e.create([{ slug, model: row.model, shard: 'us1' }]);
        await seed(e, slug, 10, slug);
        const t = (await tenant(e, slug))!;
        // One `resolve` serves the rows before and the writer (each CLI run costs a process start).
        const app = await appUrl(e, slug);
        for (const title of await titlesAt(app, t)) before.add(title);
        if (row.needs === 'backup') backup = json(await e.cli(['backup', 'create', slug, '--json'])).results[0].backup;
        const project = (
          await e.q(t.shard, t.database_name, `select id from "${t.schema_name}".projects where tenant_id = $1 limit 1`, [t.key])
        )[0].id;
        writer = new Writer(app, t, project, `w-${slug}`).start();
        await until(async () => writer!.committed.length >= 3, 30_000);
        // A rollback is refused once the target was written: the writer stays at the source, refused there after the switch.
        if (row.needs === 'moved') ok(await e.cli(move('database')(slug)), 'the move to roll back');
      }
      const key = (await tenant(e, slug))?.key;
      const args = row.command(slug, backup);
      await killAt(point, args);
      // `tenant show` names what the kill left, and a replace's fence, which the tenant's status does not say.
      const atKill = creating ? undefined : await tenant(e, slug);
      if (atKill) {
        // Up after the kill: a replace's fence, or a move's trigger fence left on its source (a
        // schema or database tenant's; a pool's was the killed session's lock, gone with it), or
        // its switch fence placed before the catalog switched (a pool's: the key's row).
        const triggers = await e.q(
          atKill.shard,
          atKill.database_name,
          `select 1 from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = $1 and g.tgname = any($2::text[])`,
          [atKill.schema_name, [FENCE_TRIGGER, SWITCH_TRIGGER]],
        );
        const keyRow =
          atKill.model === 'pool'
            ? await e
                .q(atKill.shard, atKill.database_name, `select 1 from ${FENCE_SCHEMA}.${SWITCHED_TABLE} where key = $1`, [atKill.key])
                .catch(() => [])
            : [];
        const fenceUp = point === 'restore.fenced' || (point.startsWith('move.') && triggers.length + keyRow.length > 0);
        const shown = json(await e.cli(['tenant', 'show', slug, '--json']));
        const killed = shown.killedOperations as { kind: string; writesRefused: boolean; what: string }[];
        if (/^(backup|delete)\./.test(point) || row.keeps === 'backup-only')
          expect(
            killed.map((k) => k.kind),
            `${slug}'s killed operations`,
          ).toContain(point.split('.')[0]);
        expect(
          killed.some((k) => k.writesRefused),
          killed.map((k) => k.what).join('; '),
        ).toBe(fenceUp);
      }
      // The tenant keeps writing a moment after the kill, and while the command runs again.
      await sleep(500);
      const again = await e.cli([...(row.finish?.(slug) ?? args), '--json']);
      ok(again, `${args.join(' ')} again`);
      await writer?.stop();

      const t = await tenant(e, slug);
      if ('gone' in row.end) {
        expect(t, `${slug} is deleted`).toBeUndefined();
        // Every write the writer saw committed is in the final backup.
        // The re-run's, or (killed after the removal) the killed run's: the tenant's newest backup.
        const listed = async (): Promise<string[]> =>
          json(await e.cli(['backup', 'list', slug, '--json'])).backups.map((b: { id: string }) => b.id);
        const finalBackup: string | undefined = json(again).finalBackup ?? (await listed()).sort().at(-1);
        expect(finalBackup, 'a final backup').toBeDefined();
        if (finalBackup) {
          ok(await e.cli(['restore', finalBackup, '--as', `${slug}-fb`, '--json']), 'restore of the final backup');
          const rows = await titlesThroughResolve(`${slug}-fb`);
          expect(
            writer!.committed.filter((w) => !rows.has(w)),
            'writes missing from the final backup',
          ).toEqual([]);
          ok(await e.cli(['tenant', 'delete', `${slug}-fb`, '--yes', '--skip-backup']), 'delete the check');
        }
      } else {
        if (point.startsWith('move.')) ok(await e.cli(['move', 'complete', slug, '--yes']), 'move complete');
        const now = (await tenant(e, slug))!;
        expect([now.status, now.shard, now.model], `${slug} in the catalog`).toEqual(['active', row.end.shard, row.end.model]);
        const rows = await titlesThroughResolve(slug);
        const wanted = row.keeps === 'backup-only' ? [...before] : [...before, ...(writer?.committed ?? [])];
        expect(
          wanted.filter((w) => !rows.has(w)),
          'committed writes missing',
        ).toEqual([]);
        if (row.restoredAs) {
          const copy = await titlesThroughResolve(`${slug}-as`);
          expect(
            [...before].filter((w) => !copy.has(w)),
            'backup rows missing from the restored tenant',
          ).toEqual([]);
          expect(await leftovers(`${slug}-as`, undefined)).toEqual([]);
        }
      }
      expect(await leftovers(slug, key)).toEqual([]);
    });
  }
});

describe('after every row', () => {
  it('doctor finds nothing any row left', async () => {
    const doc = json(await e.cli(['doctor', '--json']));
    const check = doc.checks.find((c: { check: string }) => c.check === 'killed operations');
    expect(check.detail).not.toMatch(/fk-/);
  });
});
