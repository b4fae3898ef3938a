import { describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';

/** `tenant rename` (issue 21): the display name changes under the tenant's lock, the slug never. */
const config = inject('fleetConfigFile');
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe('tenant rename', () => {
  it('changes the display name, records an event, keeps the URLs; again is a no-op; a new slug is refused', async () => {
    expect((await cli(['tenant', 'create', 'ren-a', '--tier', 'standard'], { config })).code).toBe(0);
    const before = json(await cli(['resolve', 'ren-a', '--json'], { config }));

    const r = await cli(['tenant', 'rename', 'ren-a', '--name', 'Ren Ä Corp\u001b[31m', '--json'], { config });
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ ok: true, changed: true, from: 'ren-a', tenant: { slug: 'ren-a', name: 'Ren Ä Corp\u001b[31m' } });
    const text = await cli(['tenant', 'rename', 'ren-a', '--name', 'Ren Ä Corp\u001b[31m'], { config });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/already named "Ren Ä Corp\\x1b\[31m"; nothing to do/);

    const show = json(await cli(['tenant', 'show', 'ren-a', '--json'], { config }));
    expect(show.tenant.name).toBe('Ren Ä Corp\u001b[31m');
    expect(show.events.filter((e: { action: string }) => e.action === 'renamed')).toHaveLength(1);
    // Nothing on the shard changed: resolve prints the same placement and URLs.
    expect(json(await cli(['resolve', 'ren-a', '--json'], { config }))).toEqual(before);

    const slug = await cli(['tenant', 'rename', 'ren-a', 'ren-b', '--name', 'x'], { config });
    expect(slug.code).toBe(2);
    expect(slug.stderr).toMatch(/slug cannot be changed/);
    expect(slug.stderr).toMatch(/restore <backup> --as ren-b/);
    expect((await cli(['tenant', 'show', 'ren-b'], { config })).code).toBe(2);
    expect(json(await cli(['tenant', 'show', 'ren-a', '--json'], { config })).tenant.name).toBe('Ren Ä Corp\u001b[31m');

    expect((await cli(['tenant', 'rename', 'ren-a'], { config })).code).toBe(2);
    expect((await cli(['tenant', 'rename', 'ren-a', '--name', 'x'.repeat(201)], { config })).code).toBe(2);
    expect((await cli(['tenant', 'rename', 'ren-nobody', '--name', 'x'], { config })).code).toBe(2);
  });
});
