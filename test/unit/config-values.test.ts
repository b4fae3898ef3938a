import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { configAsYaml, shownConfig } from '../../src/config/show.js';
import { TenantctlError } from '../../src/errors.js';
import { redactText } from '../../src/config/redact.js';

/**
 * Config values beyond the shape: `${VAR}` in URLs (encoded where it lands), connections given as
 * parts, `${VAR}` in numeric and boolean keys, database names that would collide, and connection
 * budgets too small for the catalog.
 */
const FILE = '/repo/tenants.config.yaml';
/** The password from issue 6, and worse. */
const PW = `S3cr@t:/%x"'#?`;

/** A config with us1 (the catalog's shard, in us-east) and eu1; each shard's body is given. */
function config(us1: string, eu1 = 'url: postgres://app:pw@eu1.internal:5432/postgres', top = 'catalog:\n  shard: us1'): string {
  const indent = (body: string) =>
    body
      .split('\n')
      .map((l) => `        ${l}`)
      .join('\n');
  return `${top}
regions:
  us-east:
    shards:
      us1:
${indent(us1)}
  eu-west:
    shards:
      eu1:
${indent(eu1)}
`;
}

function parseError(text: string, env: NodeJS.ProcessEnv = {}): TenantctlError {
  try {
    parseConfig(text, FILE, env);
  } catch (err) {
    expect(err).toBeInstanceOf(TenantctlError);
    expect((err as TenantctlError).exitCode).toBe(2);
    return err as TenantctlError;
  }
  throw new Error('expected parseConfig to throw');
}

function expectNoPassword(text: string): void {
  // `%x` is the tail that an unencoded password left in the path of the URL config show printed.
  for (const form of [PW, encodeURIComponent(PW), 'S3cr@t', 'S3cr%40t', '%x']) expect(text).not.toContain(form);
}

describe('${VAR} inside a URL', () => {
  it('encodes a variable that lands in the password, so the host stays the host', () => {
    const c = parseConfig(config('url: postgres://app:${US1_PASSWORD}@pg-us1.internal:6432/postgres'), FILE, { US1_PASSWORD: PW });
    const u = new URL(c.shards[0].url);
    expect(u.hostname).toBe('pg-us1.internal');
    expect(u.port).toBe('6432');
    expect(u.username).toBe('app');
    expect(decodeURIComponent(u.password)).toBe(PW);
    expect(u.pathname).toBe('/postgres');
    // The catalog's URL is derived from its shard's and keeps the same password.
    const cat = new URL(c.catalogUrl);
    expect([cat.hostname, decodeURIComponent(cat.password), cat.pathname]).toEqual(['pg-us1.internal', PW, '/tenantctl_catalog']);
  });

  it('encodes the user, a default, and a database in the path; leaves host and port as they are', () => {
    const c = parseConfig(
      config('url: postgres://${US1_USER}:${US1_PASSWORD:-d@f/lt}@${US1_HOST}:${US1_PORT:-5432}/${US1_DB}?sslmode=${SSL:-require}'),
      FILE,
      { US1_USER: 'ops/corp', US1_HOST: 'db.internal', US1_DB: 'my/db?x' },
    );
    const u = new URL(c.shards[0].url);
    expect(decodeURIComponent(u.username)).toBe('ops/corp');
    expect(decodeURIComponent(u.password)).toBe('d@f/lt');
    expect([u.hostname, u.port]).toEqual(['db.internal', '5432']);
    expect(decodeURIComponent(u.pathname)).toBe('/my/db?x');
    expect(u.searchParams.get('sslmode')).toBe('require');
    // A variable holding the whole URL is taken as it is: it is a URL already.
    const whole = `postgres://app:${encodeURIComponent(PW)}@db:5432/postgres`;
    expect(parseConfig(config('url: ${US1_URL}'), FILE, { US1_URL: whole }).shards[0].url).toBe(whole);
  });

  it('encodes catalog.url the same way', () => {
    const c = parseConfig(
      config('url: postgres://a:b@h/postgres', undefined, 'catalog:\n  url: postgres://cat:${CAT_PW}@control.internal/catalog'),
      FILE,
      { CAT_PW: PW },
    );
    const u = new URL(c.catalogUrl);
    expect([u.hostname, decodeURIComponent(u.password), u.pathname]).toEqual(['control.internal', PW, '/catalog']);
  });

  it('refuses a variable in the host that would move the rest of the URL, naming key and variable', () => {
    const err = parseError(config('url: postgres://app:pw@${US1_HOST}/postgres'), { US1_HOST: `evil.example@db.internal` });
    expect(err.message).toContain('regions.us-east.shards.us1.url: ${US1_HOST} lands in the host:port');
    expect(err.message).toContain('has 1 problem(s)');
  });

  it('never shows the password: config show, and errors of the same file', () => {
    const text = config('url: postgres://app:${US1_PASSWORD}@pg-us1.internal:5432/postgres\nmaxConnections: ${US1_MAX}');
    const c = parseConfig(config('url: postgres://app:${US1_PASSWORD}@pg-us1.internal:5432/postgres'), FILE, { US1_PASSWORD: PW });
    expectNoPassword(configAsYaml(c));
    expectNoPassword(JSON.stringify(shownConfig(c)));
    expectNoPassword(parseError(text, { US1_PASSWORD: PW, US1_MAX: 'lots' }).message);
  });
});

describe('a connection given as parts', () => {
  it('builds the shard URL (encoded) from host, port, user, password and database', () => {
    const c = parseConfig(
      config('host: pg-us1.internal\nport: ${US1_PORT:-6543}\nuser: tenantctl\npassword: ${US1_PASSWORD}\ndatabase: postgres'),
      FILE,
      { US1_PASSWORD: PW },
    );
    const u = new URL(c.shards[0].url);
    expect([u.hostname, u.port, u.username, decodeURIComponent(u.password), u.pathname]).toEqual([
      'pg-us1.internal',
      '6543',
      'tenantctl',
      PW,
      '/postgres',
    ]);
    expect(new URL(c.catalogUrl).pathname).toBe('/tenantctl_catalog');
    expectNoPassword(configAsYaml(c));
    expectNoPassword(JSON.stringify(shownConfig(c)));
  });

  it('defaults the port to 5432 and the database to postgres', () => {
    const c = parseConfig(config('host: db\nuser: app\npassword: pw'), FILE, {});
    expect(c.shards[0].url).toBe('postgres://app:pw@db:5432/postgres');
  });

  it('gives the catalog as parts too', () => {
    const c = parseConfig(
      config(
        'url: postgres://a:b@h/postgres',
        undefined,
        `catalog:\n  host: control.internal\n  user: cat\n  password: \${CAT_PW}\n  database: catalog`,
      ),
      FILE,
      { CAT_PW: PW },
    );
    const u = new URL(c.catalogUrl);
    expect([u.hostname, u.port, u.username, decodeURIComponent(u.password), u.pathname]).toEqual([
      'control.internal',
      '5432',
      'cat',
      PW,
      '/catalog',
    ]);
    expectNoPassword(configAsYaml(c));
  });

  it('refuses both forms at once, neither, and parts without a host, naming each path', () => {
    expect(parseError(config('url: postgres://a:b@h/postgres\nhost: h\npassword: x')).message).toMatch(
      /regions\.us-east\.shards\.us1\.host: give the connection either as url or as host[\s\S]*regions\.us-east\.shards\.us1\.password: give the connection either/,
    );
    expect(parseError(config('maxConnections: 5')).message).toContain(
      'regions.us-east.shards.us1.url: required (or give host, port, user, password and database instead)',
    );
    expect(parseError(config('user: app\npassword: pw')).message).toContain(
      'regions.us-east.shards.us1.host: required when the connection is given as parts',
    );
    expect(parseError(config('url: postgres://a:b@h/postgres', undefined, 'catalog:\n  shard: us1\n  host: control')).message).toContain(
      'catalog: set only one of catalog.url, catalog.shard and catalog.host/port/user/password (found shard, host)',
    );
    expect(parseError(config('host: "db/../evil@x"\nuser: app')).message).toContain(
      'regions.us-east.shards.us1.host: must be a host name or an IP address',
    );
  });
});

describe('${VAR} in numeric and boolean keys', () => {
  const numeric = `url: postgres://a:b@h/postgres\nmaxConnections: \${US1_MAXCONN:-20}\nembedded: \${US1_EMBEDDED:-true}`;
  const top = 'catalog:\n  shard: us1\ndefaults:\n  concurrency: ${CONC:-4}\nmigrations:\n  retries: "${RETRIES:-0}"';

  it('reads a number and a boolean from a default and from the environment', () => {
    const d = parseConfig(config(numeric, undefined, top), FILE, {});
    expect([d.shards[0].maxConnections, d.shards[0].embedded, d.defaults.concurrency, d.migrations.retries]).toEqual([20, true, 4, 0]);
    const e = parseConfig(config(numeric, undefined, top), FILE, { US1_MAXCONN: ' 7 ', US1_EMBEDDED: 'FALSE', CONC: '16', RETRIES: '5' });
    expect([e.shards[0].maxConnections, e.shards[0].embedded, e.defaults.concurrency, e.migrations.retries]).toEqual([7, false, 16, 5]);
  });

  it('reports a value that is not a number or a boolean, with its path', () => {
    const err = parseError(config(numeric, undefined, top), { US1_MAXCONN: 'twenty', US1_EMBEDDED: 'yes please', CONC: '2.5' });
    expect(err.message).toContain('regions.us-east.shards.us1.maxConnections: must be a whole number (got "twenty")');
    expect(err.message).toContain('regions.us-east.shards.us1.embedded: must be true or false (got "yes please")');
    expect(err.message).toContain('defaults.concurrency: must be a whole number (got "2.5")');
    expect(err.message).toContain('has 3 problem(s)');
  });

  it('still checks the range of a number read from a variable', () => {
    expect(parseError(config(numeric), { US1_MAXCONN: '0' }).message).toContain(
      'regions.us-east.shards.us1.maxConnections: must be at least 1',
    );
  });
});

describe('database names', () => {
  const url = 'url: postgres://a:b@us1.internal:5432/postgres';

  it.each([
    ['poolDatabase: t_acme', 'regions.us-east.shards.us1.poolDatabase: "t_acme" looks like a database tenant\'s database (t_<slug>)'],
    ['tenantDatabase: t_big_corp', 'regions.us-east.shards.us1.tenantDatabase: "t_big_corp" looks like a database tenant\'s database'],
    ['poolDatabase: shared\ntenantDatabase: shared', 'regions.us-east.shards.us1.tenantDatabase: "shared" is also the poolDatabase'],
    ['tenantDatabase: postgres', 'regions.us-east.shards.us1.tenantDatabase: "postgres" is the cluster\'s maintenance database'],
    ['poolDatabase: template1', 'regions.us-east.shards.us1.poolDatabase: "template1" is a name PostgreSQL keeps for template databases'],
    [
      'poolDatabase: tenantctl_catalog',
      'regions.us-east.shards.us1.poolDatabase: "tenantctl_catalog" is also the catalog database on this shard (catalog.database)',
    ],
  ])('refuses %j on a shard', (body, message) => {
    const err = parseError(config(`${url}\n${body}`));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(message);
  });

  it('refuses a catalog database that looks like a tenant database', () => {
    expect(parseError(config(url, undefined, 'catalog:\n  shard: us1\n  database: t_catalog')).message).toContain(
      'catalog.database: the catalog database "t_catalog" looks like a database tenant\'s database',
    );
    expect(parseError(config(url, undefined, 'catalog:\n  url: postgres://a:b@control/t_ops')).message).toContain(
      'catalog.url: the catalog database "t_ops" looks like',
    );
  });

  it('refuses the catalog database as a pool database on the cluster of catalog.url, and allows it elsewhere', () => {
    const top = 'catalog:\n  url: postgres://a:b@us1.internal:5432/tenant_pool';
    expect(parseError(config(url, undefined, top)).message).toContain(
      'regions.us-east.shards.us1.poolDatabase: "tenant_pool" is also the catalog database on this shard (catalog.url)',
    );
    // eu1 does not host the catalog: the same name there is another cluster's database.
    const c = parseConfig(config(url, 'url: postgres://a:b@eu1.internal/postgres\npoolDatabase: tenantctl_catalog'), FILE, {});
    expect(c.shards[1].poolDatabase).toBe('tenantctl_catalog');
  });
});

describe('connection budgets', () => {
  const why =
    "one tenant operation holds up to 3 connections to one shard at once (a move between models on the same shard: the source's write fence, its snapshot and the target), so a smaller budget would wait for itself forever";

  it('refuses a catalog shard too small for the catalog (2) and one tenant operation (3)', () => {
    for (const max of [1, 2, 3, 4]) {
      const err = parseError(config(`url: postgres://a:b@us1.internal/postgres\nmaxConnections: ${max}`));
      expect(err.message).toContain(
        `regions.us-east.shards.us1.maxConnections: ${max} is too small: this shard hosts the catalog, which holds 2 connections, and ${why}; set it to 5 or more`,
      );
    }
    expect(parseConfig(config('url: postgres://a:b@us1.internal/postgres\nmaxConnections: 5'), FILE, {}).shards[0].maxConnections).toBe(5);
  });

  it('refuses a shard without the catalog below what one tenant operation holds on it (3)', () => {
    for (const max of [1, 2]) {
      const err = parseError(
        config('url: postgres://a:b@us1.internal/postgres', `url: postgres://a:b@eu1.internal/postgres\nmaxConnections: ${max}`),
      );
      expect(err.message).toContain(`regions.eu-west.shards.eu1.maxConnections: ${max} is too small: ${why}; set it to 3 or more`);
      expect(err.message).not.toContain('eu1.maxConnections: 1 is too small: this shard hosts the catalog');
    }
    const c = parseConfig(
      config('url: postgres://a:b@us1.internal/postgres', 'url: postgres://a:b@eu1.internal/postgres\nmaxConnections: 3'),
      FILE,
      {},
    );
    expect(c.shards[1].maxConnections).toBe(3);
  });

  it('counts the shard on the same host and port as catalog.url as the catalog shard', () => {
    const top = 'catalog:\n  url: postgres://a:b@us1.internal:5432/ops_catalog';
    expect(parseError(config('url: postgres://a:b@us1.internal:5432/postgres\nmaxConnections: 4', undefined, top)).message).toContain(
      'regions.us-east.shards.us1.maxConnections: 4 is too small: this shard hosts the catalog',
    );
    // A shard without the catalog needs what one tenant operation holds only.
    const c = parseConfig(
      config('url: postgres://a:b@us1.internal:5432/postgres', 'url: postgres://a:b@eu1.internal/postgres\nmaxConnections: 3', top),
      FILE,
      {},
    );
    expect(c.shards[1].maxConnections).toBe(3);
  });
});

describe("pgBackRest's secrets among a region's pitr options", () => {
  it('are hidden by config show (YAML and JSON) and in free text; option values that are words stay', () => {
    const text = `catalog:
  shard: us1
regions:
  us-east:
    pitr:
      repo: /var/lib/pgbackrest
      options:
        repo1-type: s3
        repo1-s3-key-type: shared
        repo1-cipher-type: aes-256-cbc
        repo1-cipher-pass: TopSecretCipher123
        repo1-s3-key: AKIAEXAMPLEKEY
        repo1-s3-key-secret: SuperS3Secret
        repo1-azure-key: AzureKeyValue99
        repo1-s3-token: SessionToken77
    shards:
      us1:
        url: postgres://app:pw@us1.internal:5432/postgres
`;
    const c = parseConfig(text, FILE, {});
    const secrets = ['TopSecretCipher123', 'AKIAEXAMPLEKEY', 'SuperS3Secret', 'AzureKeyValue99', 'SessionToken77'];
    for (const shown of [configAsYaml(c), JSON.stringify(shownConfig(c))]) {
      for (const s of secrets) expect(shown).not.toContain(s);
      expect(shown).toContain('shared');
      expect(shown).toContain('aes-256-cbc');
    }
    expect(redactText('pgbackrest said: cipher TopSecretCipher123 refused')).toBe('pgbackrest said: cipher *** refused');
  });
});
