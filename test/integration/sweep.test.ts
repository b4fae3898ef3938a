import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { json, ownMigrateFleet, sleep, tenantDigests, until, type MigrateEnv } from '../helpers/migrate-env.js';
import { shardDbUrl } from '../helpers/deps.js';
import { seed, tenant } from '../helpers/seed.js';
import { untilRestorePhase } from '../helpers/restore-ops.js';
import { storageFor } from '../../src/backup/regions.js';
import { latestMove } from '../../src/move/record.js';
import { lockTenant } from '../../src/operations/tenant-lock.js';

/**
 * Issue 18, item 2: ONE sweep. SIGKILL mid-backup, mid-restore and mid-move; `doctor` names what
 * each left (one check, the sweep's dry run), the next command of each tenant (whatever its verb)
 * cleans it, `move status` no longer reports a removed copy as copied, and a neighbour (same pool,
 * its own unpublished archive under a live holder) is never touched.
 */
const { env } = ownMigrateFleet();

const running = (e: MigrateEnv, slug: string) =>
  e.db.selectFrom('operations').select(['id', 'kind']).where('tenant_slug', '=', slug).where('status', '=', 'running').execute();

async function killWhen(e: MigrateEnv, args: string[], fault: string | undefined, ready: () => Promise<unknown>): Promise<void> {
  let pid = 0;
  const run = e.cli(args, { env: fault ? { TENANTCTL_FAULT: fault } : {}, onSpawn: (p) => (pid = p) });
  await until(ready, 60_000);
  process.kill(pid, 'SIGKILL');
  expect((await run).signal).toBe('SIGKILL');
}

async function killedCheck(e: MigrateEnv): Promise<{ ok: boolean; detail: string }> {
  const doc = json(await e.cli(['doctor', '--json']));
  return doc.checks.find((c: { check: string }) => c.check === 'killed operations');
}

describe('one sweep for every killed operation', () => {
  it('SIGKILL mid-backup, mid-restore, mid-move: doctor names the leftovers, the next command of each tenant cleans them, a neighbour is untouched', async () => {
    const e = await env('sweep');
    await e.create([
      { slug: 'sw-b', model: 'pool', shard: 'us1' },
      { slug: 'sw-n', model: 'pool', shard: 'us1' },
      { slug: 'sw-r', model: 'schema', shard: 'us1' },
      { slug: 'sw-m', model: 'schema', shard: 'us1' },
    ]);
    for (const s of ['sw-b', 'sw-n', 'sw-r', 'sw-m']) await seed(e, s, 30, s);
    const neighbour = await tenantDigests(e, 'sw-n');
    const mBefore = await tenantDigests(e, 'sw-m');
    const store = storageFor(e.config, 'us-east').location;

    // Mid-backup: its COPY waits behind a lock on the pool's tasks table, and is killed there.
    const b = (await tenant(e, 'sw-b'))!;
    const holder = new pg.Client({ connectionString: shardDbUrl(e.config, 'us1', b.database_name) });
    await holder.connect();
    try {
      await holder.query(`begin; lock table ${b.schema_name}.tasks in access exclusive mode`);
      await killWhen(e, ['backup', 'create', 'sw-b'], undefined, async () => {
        const ops = await e.db
          .selectFrom('operations')
          .select('progress')
          .where('tenant_slug', '=', 'sw-b')
          .where('status', '=', 'running')
          .execute();
        return ops.some((o) => (o.progress as { phase?: string }).phase === 'copy') && (await sleep(300), true);
      });
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
    }
    const bPartial = (await readdir(join(store, 'sw-b'))).find((n) => n.endsWith('.partial'));
    expect(bPartial).toBeDefined();

    // Mid-restore: a backup of sw-r restored as sw-r2, killed with its placement committed and the catalog not written.
    const rb = json(await e.cli(['backup', 'create', 'sw-r', '--json'])).results[0].backup;
    await killWhen(e, ['restore', rb, '--as', 'sw-r2'], 'restore.committed', () => untilRestorePhase(e.db, 'sw-r2', ['committed']));
    const rOp = (await running(e, 'sw-r2'))[0];
    expect(rOp.kind).toBe('restore');

    // Mid-move: killed in the copy, with the fence up and the target built.
    await killWhen(e, ['move', 'sw-m', '--to-shard', 'eu1', '--to-model', 'database', '--yes'], 'move.after-copy', async () => {
      const m = await latestMove(e.db, 'sw-m');
      return m?.status === 'running' && m.progress.phases?.copy !== undefined;
    });
    const mOp = (await latestMove(e.db, 'sw-m'))!;
    expect(mOp.progress.targetCreated).toBe(true);
    expect((await tenant(e, 'sw-m'))!.status).toBe('moving');

    // A neighbour's own unpublished archive, of a backup that is alive (it holds the neighbour's lock).
    const nPartial = `.sw-n.20261205T000000000Z.partial`;
    await mkdir(join(store, 'sw-n', nPartial), { recursive: true });
    const nLock = await lockTenant(e.db, 'sw-n', { command: 'backup' });
    try {
      const before = await killedCheck(e);
      expect(before.ok).toBe(false);
      expect(before.detail).toContain(bPartial);
      expect(before.detail).toMatch(/sw-b: backup \d+ still running/);
      expect(before.detail).toContain(`sw-r2: restore ${rOp.id} still running`);
      // sw-r2 was never registered: no backup or move of it can run, only its restore again.
      expect(before.detail).toContain('sw-r2 is not a tenant yet: run its killed restore again');
      expect(before.detail).toContain(`sw-m: move ${mOp.id} still running`);
      expect(before.detail, "a live operation's files are not leftovers").not.toContain('sw-n');

      // The next command of each tenant sweeps it first, whatever its verb.
      const backupB = json(await e.cli(['backup', 'create', 'sw-b', '--json'])).results[0];
      expect(backupB.status).toBe('succeeded');
      expect(backupB.warnings.join('\n')).toContain(`${bPartial} of a killed backup of sw-b removed`);
      const backupM = json(await e.cli(['backup', 'create', 'sw-m', '--json'])).results[0];
      expect(backupM.status, JSON.stringify(backupM)).toBe('succeeded');
      expect(backupM.warnings.join('\n')).toMatch(new RegExp(`move ${mOp.id} of sw-m was killed; .*removed the partial copy`));
      const restoreR = await e.cli(['restore', rb, '--as', 'sw-r2', '--json']);
      expect(restoreR.code, restoreR.stdout + restoreR.stderr).toBe(0);
      expect(JSON.stringify(json(restoreR))).toContain(`restore ${rOp.id} of sw-r2 was killed`);

      const after = await killedCheck(e);
      expect(after, after.detail).toMatchObject({ ok: true });
      for (const s of ['sw-b', 'sw-r2', 'sw-m']) expect(await running(e, s)).toEqual([]);
      expect((await readdir(join(store, 'sw-b'))).filter((n) => n.startsWith('.'))).toEqual([]);
      expect(await readdir(join(store, 'sw-n'))).toContain(nPartial);
    } finally {
      await nLock.release();
    }
    // The killed move: back where it was, its fence gone, its copy gone and not reported as copied.
    const m = (await tenant(e, 'sw-m'))!;
    expect(m).toMatchObject({ status: 'active', shard: 'us1', model: 'schema' });
    expect(await tenantDigests(e, 'sw-m')).toEqual(mBefore);
    const target = mOp.args.plan.to;
    const dbs = await e.q('eu1', 'postgres', 'select 1 from pg_database where datname = $1', [target.database]);
    expect(dbs).toEqual([]);
    const st = json(await e.cli(['move', 'status', 'sw-m', '--json']));
    expect(st.move).toMatchObject({ id: mOp.id, status: 'interrupted', copy: 'removed', rows: 0 });
    const text = (await e.cli(['move', 'status', 'sw-m'])).stdout;
    expect(text).toContain('copy removed');
    expect(text).not.toMatch(/copied [1-9]/);
    // The neighbour in the same pool: every row as before.
    expect(await tenantDigests(e, 'sw-n')).toEqual(neighbour);
  });
});
