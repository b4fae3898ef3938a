import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { UsageError } from '../../src/errors.js';
import { assertRoom, human } from '../../src/pitr/disk.js';
import { configText, pitrRepo, stanzaOf, archiveCommand } from '../../src/pitr/repo.js';
import { invalidPageDatabases, parseRecovery } from '../../src/pitr/scratch.js';
import { pgbackrestTime } from '../../src/pitr/recover.js';
import { emptyWindow } from '../../src/pitr/window.js';
import { windowCheck } from '../../src/doctor/pitr.js';

const CONFIG = `
catalog:
  shard: us1
regions:
  us-east:
    pitr: { repo: /var/lib/pgbackrest/us-east, options: { repo1-retention-full: 4 } }
    shards:
      us1:
        url: postgres://tenantctl:pw@db1.internal:5433/postgres
        pitr: { pgPath: /var/lib/postgresql/15/main }
      us2:
        url: postgres://tenantctl:pw@db2.internal:5432/postgres
  eu-west:
    shards:
      eu1:
        url: postgres://tenantctl:pw@db3.internal:5432/postgres
`;

describe('point-in-time restore: pure parts', () => {
  const config = parseConfig(CONFIG, '/etc/tenantctl/tenants.config.yaml', {});

  it("writes pgBackRest's config: the region's repository, the operator's options over the defaults, one stanza per shard that names its cluster", () => {
    const repo = pitrRepo(config, 'us-east')!;
    expect(repo.configFile).toBe('/var/lib/pgbackrest/us-east.tenantctl/pgbackrest.conf');
    const text = configText(config, repo);
    expect(text).toContain('repo1-path=/var/lib/pgbackrest/us-east\n');
    expect(text).toContain('repo1-retention-full=4\n');
    expect(text).not.toContain('repo1-retention-full=2');
    expect(text).toContain(
      '[us1]\npg1-path=/var/lib/postgresql/15/main\npg1-port=5433\npg1-socket-path=/var/run/postgresql\npg1-user=postgres\n',
    );
    // us2 does not say where its cluster is: no stanza, and a clear error when asked for one.
    expect(text).not.toContain('[us2]');
    expect(() => stanzaOf(config, config.shards.find((s) => s.name === 'us2')!)).toThrow(
      /shard us2 does not say where its data directory is/,
    );
    expect(archiveCommand(repo, 'us1')).toBe(
      'pgbackrest --config=/var/lib/pgbackrest/us-east.tenantctl/pgbackrest.conf --stanza=us1 archive-push %p',
    );
    // A region without a repository and without embedded shards has none.
    expect(pitrRepo(config, 'eu-west')).toBeNull();
  });

  it('reads what recovery did from the server log: time reached, WAL replayed, invalid pages by database', () => {
    const log = [
      '2026-12-05 07:19:50.1 UTC [1] LOG:  redo starts at 0/5000028',
      '2026-12-05 07:19:52.9 UTC [1] WARNING:  page 4 of relation base/16397/760179 is uninitialized',
      '2026-12-05 07:19:52.9 UTC [1] WARNING:  page 9 of relation base/16400/1259 does not exist',
      '2026-12-05 07:19:53.0 UTC [1] LOG:  recovery stopping before commit of transaction 812, time 2026-12-05 07:19:40.123+00',
      '2026-12-05 07:19:53.0 UTC [1] LOG:  redo done at 1/00000100 system usage: CPU: user: 0.01 s',
      '2026-12-05 07:19:53.0 UTC [1] LOG:  last completed transaction was at log time 2026-12-05 07:19:39.5+00',
    ].join('\n');
    const r = parseRecovery(log);
    expect(r.reached).toBe('2026-12-05 07:19:39.5+00');
    expect(r.walBytes).toBe(2 ** 32 + 0x100 - 0x5000028);
    expect(r.invalidPages.sort()).toEqual([16397, 16400]);
    expect([...invalidPageDatabases('nothing')]).toEqual([]);
    expect(parseRecovery('').walBytes).toBe(0);
  });

  it("gives pgBackRest's --target the time format it takes", () => {
    expect(pgbackrestTime(new Date('2026-12-05T14:00:00.123Z'))).toBe('2026-12-05 14:00:00.123+00');
  });

  it('refuses a scratch restore that does not fit, with the numbers (exit 2)', () => {
    expect(() => assertRoom(100, 200, '/tmp')).not.toThrow();
    try {
      assertRoom(3 * 1024 ** 3, 512 * 1024 ** 2, '/tmp');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).code).toBe('PITR_DISK');
      expect((err as Error).message).toBe('the scratch restore needs about 3.0 GB and /tmp has 512.0 MB free');
    }
    expect(human(1536)).toBe('1.5 kB');
  });
});

describe("doctor's pitr window check", () => {
  const shard = { name: 'us1', region: 'us-east', url: 'postgres://x@h/postgres' } as unknown as Parameters<typeof emptyWindow>[0];
  const unreachable = emptyWindow(shard, 'shard us1 unreachable');
  const good = {
    ...emptyWindow(shard),
    stanza: 'ok' as const,
    healthy: true,
    window: { from: '2026-12-05T07:00:03.000Z', to: '2026-12-05T07:41:10.512Z' },
  };

  it('archiving not healthy where the config does not ask for it is a warning, not a bare ok', () => {
    const c = windowCheck(shard, false, unreachable);
    expect(c).toMatchObject({ ok: true, warning: true });
    expect(c.detail).toMatch(/archiving not healthy \(regions\.us-east\.pitr is not set, so doctor does not fail on it\)$/);
  });

  it('asked for by the config, it is a failure; a usable window is plainly ok', () => {
    expect(windowCheck(shard, true, unreachable)).toMatchObject({ ok: false });
    expect(windowCheck(shard, true, unreachable).warning).toBeUndefined();
    // Archiving that works, no base backup yet (a fresh dev fleet): information.
    const noBackupYet = windowCheck(shard, false, { ...good, window: null });
    expect([noBackupYet.ok, noBackupYet.warning]).toEqual([true, undefined]);
    const fine = windowCheck(shard, false, good);
    expect(fine).toEqual({ check: 'pitr window on us1', ok: true, detail: `${good.window.from} → ${good.window.to}; archiving healthy` });
  });
});
