import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, ownMigrateFleet, tenantCount } from '../helpers/migrate-env.js';
import { tenant } from '../helpers/seed.js';

/**
 * Bulk onboarding files (issue 18): a re-run row that conflicts with the tenant the catalog
 * recorded is refused, not "skipped"; a file's problems come in one list with one numbering.
 */
const { env, fleet: ownFleet } = ownMigrateFleet();

describe('bulk files', () => {
  it('a re-run row asking another key, model, tier or region than the created tenant is refused (exit 2), naming line, field, recorded and file values', async () => {
    const e = await env('bulkre');
    const file = join(e.migrationsDir, '..', 'bulk-rerun.csv');
    await writeFile(file, 'slug,tier,region\nbre-a,free,us-east\nbre-b,standard,us-east\n');
    const first = await e.cli(['tenant', 'create', '--from-file', file, '--json']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const b = (await tenant(e, 'bre-b'))!;
    // The same file again: every row skipped, exit 0.
    const again = await e.cli(['tenant', 'create', '--from-file', file, '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(json(again).summary).toMatchObject({ skipped: 2 });
    const other = '22222222-2222-4222-8222-222222222222';
    await writeFile(
      file,
      `slug,tier,region,key,model\nbre-a,standard,us-east,,\nbre-b,standard,eu-west,${other},database\nbre-new,free,us-east,,\n`,
    );
    const before = await tenantCount(e);
    const r = await e.cli(['tenant', 'create', '--from-file', file, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    const msg: string = json(r).error.message;
    expect(msg).toContain('line 2 (bre-a): tier is standard in the file, but tenant bre-a exists with tier free (active)');
    expect(msg).toContain(`line 3 (bre-b): key is ${other} in the file, but tenant bre-b exists with key ${b.key} (active)`);
    expect(msg).toContain('line 3 (bre-b): model is database in the file, but tenant bre-b exists with model schema (active)');
    expect(msg).toContain('line 3 (bre-b): region is eu-west in the file, but tenant bre-b exists with region us-east (active)');
    expect(await tenantCount(e)).toBe(before);
    expect(await tenant(e, 'bre-new')).toBeUndefined();
  });

  it('rows created at once spread over the least-loaded shards instead of all taking the one least loaded at the start', async () => {
    // A region of two shards with no tenants yet (us9 is a second name for us1's cluster).
    const us1 = ownFleet().config.shards.find((s) => s.name === 'us1')!;
    const e = await env('bulkspread', { extraShards: { us9: us1.url } });
    const file = join(e.migrationsDir, '..', 'bulk-spread.csv');
    await writeFile(file, `slug,tier,region\n${['a', 'b', 'c', 'd'].map((x) => `bsp-${x},standard,us-east`).join('\n')}\n`);
    const r = await e.cli(['tenant', 'create', '--from-file', file, '--concurrency', '4', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const shards = json(r).results.map((x: { shard: string }) => x.shard);
    expect(shards.filter((s: string) => s === 'us1')).toHaveLength(2);
    expect(shards.filter((s: string) => s === 'us9')).toHaveLength(2);
  });

  it("a file's problems, its own and the config's and catalog's, come in one list in file order with the file's line numbers", async () => {
    const e = await env('bulk1');
    const file = join(e.migrationsDir, '..', 'bulk-one-pass.csv');
    // line 2: a bad slug (the file's problem); line 4: an unknown tier, line 5: an unknown region (the config's);
    // line 6: an unknown model, region and shard, each named (planning stops at the first).
    await writeFile(
      file,
      'slug,tier,region,model,shard\nBad Slug,free,us-east,,\n\nok-tier,platinum,us-east,,\nok-fine,free,mars,,\nok-three,,mars,flat,us9\n',
    );
    const r = await e.cli(['tenant', 'create', '--from-file', file, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    const msg: string = json(r).error.message;
    expect(msg).toMatch(/has 6 problem\(s\)/);
    const lines = msg
      .split('\n')
      .slice(1)
      .map((l) => l.trim());
    expect(lines[0]).toMatch(/^line 2 \(Bad Slug\): slug "Bad Slug"/);
    expect(lines[1]).toMatch(/^line 4 \(ok-tier\): .*platinum/);
    expect(lines[2]).toMatch(/^line 5 \(ok-fine\): .*mars/);
    expect(lines.slice(3).sort()).toEqual(
      [
        'line 6 (ok-three): unknown model "flat"',
        'line 6 (ok-three): unknown region "mars"',
        'line 6 (ok-three): unknown shard "us9"',
      ].sort(),
    );
    expect(msg).not.toMatch(/\brow \d|item \d/);
  });
});
