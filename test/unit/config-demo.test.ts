import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `npm run demo` deletes and creates demo-* tenants: it must run on the shipped config only, and
 * only when all of its shards are embedded. The script runs from a copy of the repository whose
 * config has a real shard; tenantctl itself is not there, so nothing can run past the guard.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tenantctl-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function checkout(config: string): string {
  const root = mkdtempSync(join(dir, 'repo-'));
  mkdirSync(join(root, 'scripts'));
  for (const f of ['demo.sh', 'demo-guard.mjs']) copyFileSync(join(REPO, 'scripts', f), join(root, 'scripts', f));
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  writeFileSync(join(root, 'tenants.config.yaml'), config);
  return root;
}

const shipped = readFileSync(join(REPO, 'tenants.config.yaml'), 'utf8');

describe('npm run demo', () => {
  it('ignores TENANTCTL_CONFIG, says so, and refuses a shipped config with a shard that is not embedded', () => {
    // us2 turned into a real cluster; eu1 made "embedded" only through the environment.
    const edited = shipped
      .replace(/(us2:\n\s+url: .*\n\s+maxConnections: 10\n\s+)embedded: true/, '$1embedded: false')
      .replace(/(eu1:\n\s+url: .*\n\s+maxConnections: 10\n\s+)embedded: true/, '$1embedded: ${DEMO_EU1_EMBEDDED:-true}');
    expect(edited).toContain('embedded: false');
    expect(edited).toContain('embedded: ${DEMO_EU1_EMBEDDED:-true}');
    const root = checkout(edited);
    const other = join(dir, 'other.yaml');
    writeFileSync(other, shipped);
    const r = spawnSync('bash', [join(root, 'scripts', 'demo.sh')], {
      env: { ...process.env, TENANTCTL_CONFIG: other },
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`demo: ignoring TENANTCTL_CONFIG=${other}; the demo runs on ${join(root, 'tenants.config.yaml')} only`);
    expect(r.stderr).toContain('demo: refusing to run');
    expect(r.stderr).toContain('not embedded: regions.us-east.shards.us2, regions.eu-west.shards.eu1');
    expect(r.stderr).not.toContain('$ tenantctl');
  });

  it('lets the shipped config through its guard', () => {
    const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'demo-guard.mjs'), join(REPO, 'tenants.config.yaml')], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
