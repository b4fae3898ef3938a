import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { TenantRow } from '../../src/catalog/tables.js';
import { createOutput } from '../../src/report/output.js';
import { streamTenantList } from '../../src/report/tenant.js';

/** `tenant list --json` written page by page (issue 22): one valid document, whatever the pages. */
function sink(): Writable & { text: string; writes: number } {
  const w = new Writable({
    write(chunk, _enc, done) {
      w.text += String(chunk);
      w.writes++;
      done();
    },
  }) as Writable & { text: string; writes: number };
  w.text = '';
  w.writes = 0;
  return w;
}

const row = (slug: string): TenantRow => ({
  id: 1,
  slug,
  key: `k-${slug}`,
  name: slug,
  tier: 'free',
  model: 'pool',
  region: 'us-east',
  shard: 'us1',
  database_name: 'tenant_pool',
  schema_name: 'app',
  residency: null,
  status: 'active',
  status_detail: null,
  schema_version: null,
  created_at: new Date('2026-01-01T00:00:00Z'),
  updated_at: new Date('2026-01-01T00:00:00Z'),
});

async function* pages(...ps: TenantRow[][]): AsyncGenerator<TenantRow[]> {
  for (const p of ps) yield p;
}

describe('tenant list --json, streamed', () => {
  it.each([
    ['no tenants', [] as TenantRow[][], []],
    ['one page', [[row('a'), row('b')]], ['a', 'b']],
    ['three pages', [[row('a')], [row('b'), row('c')], [row('d')]], ['a', 'b', 'c', 'd']],
  ])('%s: one JSON document with every tenant in page order, written a page at a time', async (_name, ps, slugs) => {
    const stdout = sink();
    const out = createOutput({ json: true, stdout: stdout as never, stderr: sink() as never, env: {} });
    await streamTenantList(out, pages(...ps));
    const doc = JSON.parse(stdout.text);
    expect(doc).toMatchObject({ command: 'tenant list', ok: true });
    expect(doc.tenants.map((t: { slug: string }) => t.slug)).toEqual(slugs);
    if (slugs.length) expect(doc.tenants[0]).toMatchObject({ key: 'k-a', createdAt: '2026-01-01T00:00:00.000Z' });
    expect(stdout.writes).toBe(ps.length + 2);
  });

  it('a list of one page is sorted by the caller (natural order); more pages keep the catalog order', async () => {
    const natural = (p: TenantRow[]) => [...p].sort((a, b) => a.slug.length - b.slug.length || (a.slug < b.slug ? -1 : 1));
    const run = async (ps: TenantRow[][]) => {
      const stdout = sink();
      await streamTenantList(
        createOutput({ json: true, stdout: stdout as never, stderr: sink() as never, env: {} }),
        pages(...ps),
        natural,
      );
      return JSON.parse(stdout.text).tenants.map((t: { slug: string }) => t.slug);
    };
    expect(await run([[row('t-10'), row('t-2')]])).toEqual(['t-2', 't-10']);
    expect(await run([[row('t-10')], [row('t-2')]])).toEqual(['t-10', 't-2']);
  });
});
