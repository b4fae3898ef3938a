import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stopCluster } from '../../src/dev/cluster.js';
import { devUp, shardDataDir } from '../../src/dev/fleet.js';
import { latestMove } from '../../src/move/record.js';
import { json, ownMigrateFleet, until } from '../helpers/migrate-env.js';

/**
 * A shard dying mid-operation (issue 18, item 6): the catalog's shard (us1 of a private fleet,
 * also the move's source) is stopped while a move waits after its copy. The move ends with ONE
 * clear error (exit 1, SHARD_LOST naming the shard, no pg internals or stack), `move status`
 * says what is true once the shard is back (the pool fence went with the process), and running
 * the move again cleans up and finishes it.
 */
const { env, fleet } = ownMigrateFleet();

describe('a shard lost mid-move', () => {
  it("stopping the catalog's shard while a move waits after its copy: exit 1 naming the shard, no internals; move status truthful; the re-run finishes", async () => {
    const e = await env('lost');
    await e.create([{ slug: 'lost-p', model: 'pool', shard: 'us1' }]);
    const t = await e.db.selectFrom('tenants').selectAll().where('slug', '=', 'lost-p').executeTakeFirstOrThrow();
    await e.q('us1', t.database_name, 'insert into app.workspaces (id, name) values ($1, $2)', [t.key, 'ws lost']);

    const dir = await mkdtemp(join(tmpdir(), 'tenantctl-lost-'));
    const resume = join(dir, 'resume');
    const us1 = fleet().config.shards.find((s) => s.name === 'us1')!;
    try {
      const run = e.cli(['move', 'lost-p', '--to-shard', 'eu1', '--yes', '--json'], {
        env: { TENANTCTL_FAULT: 'move.after-copy:resume', TENANTCTL_FAULT_RESUME_FILE: resume },
      });
      await until(async () => {
        const op = await latestMove(e.db, 'lost-p');
        return op?.status === 'running' && (op.progress as { phases?: Record<string, number> }).phases?.copy !== undefined;
      });
      await stopCluster(shardDataDir(fleet().config, us1));
      await writeFile(resume, '');
      const r = await run;

      expect(r.code, r.stdout + r.stderr).toBe(1);
      const doc = json(r);
      const error = doc.results?.[0]?.error ?? doc.error;
      expect(error.code, r.stdout).toBe('SHARD_LOST');
      expect(error.message).toMatch(/shard us1/);
      for (const out of [r.stdout, r.stderr]) {
        expect(out).not.toMatch(/BoundPool|Emitted 'error'|node_modules|\n\s+at /);
        expect(out).not.toContain(fleet().password);
      }
      expect(r.stderr.split('\n').length).toBeLessThan(30);

      // Back up: the catalog still says moving (it could not be told otherwise) and the move's
      // process is gone; its pool fence went with it, and status says so.
      await devUp(fleet().config, { testMode: true });
      const s = await e.cli(['move', 'status', 'lost-p', '--json']);
      expect(s.code, s.stderr).toBe(0);
      const st = json(s);
      expect(st.move).toMatchObject({ status: 'running', live: false, fence: { up: false } });
      const text = await e.cli(['move', 'status', 'lost-p']);
      expect(text.stdout).not.toContain('fence still up');
      expect(text.stdout).toContain('run the move again');

      const again = await e.cli(['move', 'lost-p', '--to-shard', 'eu1', '--yes', '--json']);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(json(again).results?.[0] ?? json(again)).toMatchObject({ status: 'switched' });
      const after = await e.db.selectFrom('tenants').selectAll().where('slug', '=', 'lost-p').executeTakeFirstOrThrow();
      expect(after).toMatchObject({ shard: 'eu1', status: 'active' });
      const rows = await e.q('eu1', after.database_name, 'select name from app.workspaces where id = $1', [t.key]);
      expect(rows).toEqual([{ name: 'ws lost' }]);
    } finally {
      await writeFile(resume, '').catch(() => undefined);
      await devUp(fleet().config, { testMode: true });
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
