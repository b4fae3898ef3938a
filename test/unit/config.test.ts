import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { redactText, redactUrl } from '../../src/config/redact.js';
import { TenantctlError } from '../../src/errors.js';

const SHIPPED_FILE = fileURLToPath(new URL('../../tenants.config.yaml', import.meta.url));
const SHIPPED = readFileSync(SHIPPED_FILE, 'utf8');
const FILE = '/repo/tenants.config.yaml';

/** Every character that breaks naive URL handling or quoting. */
const HOSTILE = `p@ss:w/rd%"'x`;
const HOSTILE_ENCODED = encodeURIComponent(HOSTILE); // p%40ss%3Aw%2Frd%25%22'x

/** A small valid config; `extra` is appended verbatim (indentation is the caller's). */
function configText(opts: { url?: string; extra?: string; eu1?: string } = {}): string {
  const url = opts.url ?? 'postgres://postgres:pw@127.0.0.1:55431/postgres';
  return `
catalog:
  shard: us1
regions:
  us-east:
    shards:
      us1:
        url: "${url.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"
  eu-west:
    residency: eu
    shards:
      eu1:
${opts.eu1 ?? '        url: postgres://postgres:pw@127.0.0.1:55433/postgres'}
${opts.extra ?? ''}
`;
}

/** The error parseConfig throws (fails the test if it does not throw). */
function parseError(text: string, env: NodeJS.ProcessEnv = {}): TenantctlError {
  try {
    parseConfig(text, FILE, env);
  } catch (err) {
    expect(err).toBeInstanceOf(TenantctlError);
    return err as TenantctlError;
  }
  throw new Error('expected parseConfig to throw');
}

describe('parseConfig', () => {
  it('accepts the shipped tenants.config.yaml with the documented defaults', () => {
    const config = parseConfig(SHIPPED, SHIPPED_FILE, {});
    expect(config.shards.map((s) => [s.region, s.name, s.embedded])).toEqual([
      ['us-east', 'us1', true],
      ['us-east', 'us2', true],
      ['eu-west', 'eu1', true],
    ]);
    expect(config.shards.find((s) => s.name === 'eu1')?.residency).toBe('eu');
    expect(new URL(config.shards[0].url).port).toBe('55431');
    expect(config.catalogUrl).toBe('postgres://tenantctl:dev-Pw-4f9c@127.0.0.1:55431/tenantctl_catalog');
    expect(config.defaultRegion).toBe('us-east');
    expect(config.defaultTier).toBe('free');
    expect(config.dev.dataDir).toBe('.tenantctl/dev');
    expect(config.servingRole.password).toBe('app-dev-password');
  });

  it('reads ${VAR} from the environment and falls back to ${VAR:-default}', () => {
    const config = parseConfig(SHIPPED, SHIPPED_FILE, { TENANTCTL_DEV_PORT_US1: '6001' });
    expect(new URL(config.shards[0].url).port).toBe('6001');
    expect(new URL(config.shards[1].url).port).toBe('55432');
    // An empty variable counts as unset, so the default applies.
    const empty = parseConfig(SHIPPED, SHIPPED_FILE, { TENANTCTL_DEV_PORT_US1: '' });
    expect(new URL(empty.shards[0].url).port).toBe('55431');
  });

  it('reports a ${VAR} with no value and no default, naming the key and the variable', () => {
    const err = parseError(configText({ extra: 'servingRole:\n  name: app_user\n  password: ${APP_PW}' }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain('servingRole.password: ${APP_PW} is not set');
  });

  it('reports a missing ${VAR} once, not again as the invalid value it leaves behind', () => {
    const err = parseError(configText({ eu1: '        url: ${EU1_URL}' }));
    expect(err.message).toContain('has 1 problem(s)');
    expect(err.message).toContain('regions.eu-west.shards.eu1.url: ${EU1_URL} is not set and has no default');
  });

  it('reports an unknown key with its path, and every problem at once', () => {
    const err = parseError(
      configText({
        extra: 'defaults:\n  concurency: 4\ndev:\n  dataDir: x\n  datadir: y',
      }),
    );
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('defaults: unknown key(s) "concurency"');
    expect(err.message).toContain('dev: unknown key(s) "datadir"');
    expect(err.message).toContain('has 2 problem(s)');
  });

  it("refuses 0 for migrate up's limits (0 is PostgreSQL's 'no limit': a DDL waiting forever for its lock)", () => {
    const err = parseError(configText({ extra: 'migrations:\n  lockTimeout: 0s\n  statementTimeout: 0ms\n  lockWait: 0s' }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/migrations\.lockTimeout: must be above 0 \(0 would mean no limit at all\)/);
    expect(err.message).toMatch(/migrations\.statementTimeout: must be above 0/);
    // lockWait is tenantctl's own wait for another session: 0 is "do not wait", allowed.
    expect(err.message).not.toMatch(/lockWait/);
    expect(err.message).toContain('has 2 problem(s)');
  });

  it('reports an unknown key inside a shard', () => {
    const err = parseError(configText({ eu1: '        url: postgres://postgres:pw@127.0.0.1:55433/postgres\n        maxConnection: 5' }));
    expect(err.message).toContain('regions.eu-west.shards.eu1: unknown key(s) "maxConnection"');
  });

  it('reports a missing shard url as required', () => {
    const err = parseError(configText({ eu1: '        maxConnections: 5' }));
    expect(err.message).toContain('regions.eu-west.shards.eu1.url: required');
  });

  it('refuses a url with one slash (no host: pg would connect to localhost:5432) or a ?password= (pg does not read it), never printing the password', () => {
    const oneSlash = parseError(configText({ url: 'postgresql:/tenantctl:Eu1Secr3tPW@127.0.0.1:55431/postgres' }));
    expect(oneSlash.message).toContain(
      'regions.us-east.shards.us1.url: must be a postgres:// URL with a host: two slashes, then user:password@host:port/database',
    );
    const query = parseError(configText({ url: 'postgres://tenantctl@127.0.0.1:55431/postgres?password=Eu1Secr3tPW' }));
    expect(query.message).toContain(
      'regions.us-east.shards.us1.url: the password goes in the user part of the URL (user:password@host), not in ?password=',
    );
    for (const m of [oneSlash.message, query.message]) expect(m).not.toContain('Eu1Secr3tPW');
    expect(redactText('at postgres://u@h:5432/db?sslmode=require&password=Eu1Secr3tPW now')).toBe(
      'at postgres://u@h:5432/db?sslmode=require&password=*** now',
    );
  });

  it('gives CONFIG_YAML for malformed YAML', () => {
    const err = parseError('catalog:\n  shard: us1\n regions: [\n');
    expect(err.code).toBe('CONFIG_YAML');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain(FILE);
  });

  it('never puts a password in an error message', () => {
    const url = `postgres://postgres:${HOSTILE_ENCODED}@127.0.0.1:55431/postgres`;
    const messages = [
      // Other problems in a file that holds the password.
      parseError(configText({ url, extra: 'defaults:\n  concurency: 4' })).message,
      parseError(configText({ url, extra: 'servingRole:\n  name: app_user\n  password: ${NOPE}' })).message,
      // The password written unencoded breaks the URL itself.
      parseError(configText({ url: `postgres://postgres:${HOSTILE}@127.0.0.1:55431/postgres` })).message,
      // A YAML error on the line holding the password.
      parseError(`catalog:\n  shard: us1\nregions:\n  us-east:\n    shards:\n      us1:\n        url: ${url}\n      - broken`).message,
      // A serving-role password with a type error.
      parseError(configText({ url, extra: `servingRole:\n  name: app_user\n  password: "${HOSTILE.replace(/"/g, '\\"')}"\n  extra: 1` }))
        .message,
    ];
    for (const message of messages) {
      expect(message).not.toContain(HOSTILE);
      expect(message).not.toContain(HOSTILE_ENCODED);
      expect(message).not.toContain('rd%');
    }
  });
});

describe('loadConfig', () => {
  it('refuses a directory as the config with CONFIG_NOT_FOUND (exit 2), naming it, not an unexpected EISDIR', () => {
    try {
      loadConfig({ file: tmpdir() });
      expect.unreachable('a directory was read as a config');
    } catch (err) {
      expect(err).toBeInstanceOf(TenantctlError);
      expect(err).toMatchObject({ code: 'CONFIG_NOT_FOUND', exitCode: 2, message: `config ${tmpdir()} is a directory, not a config file` });
    }
  });
});

describe('redactUrl', () => {
  it('hides a percent-encoded hostile password and keeps the rest', () => {
    const redacted = redactUrl(`postgres://app:${HOSTILE_ENCODED}@db.internal:5432/tenant_pool?sslmode=require`);
    expect(redacted).toBe('postgres://app:***@db.internal:5432/tenant_pool?sslmode=require');
  });

  it('leaves a url without a password alone', () => {
    expect(redactUrl('postgres://app@db:5432/x')).toBe('postgres://app@db:5432/x');
  });

  it('hides the whole url when it cannot be parsed (a raw hostile password)', () => {
    const redacted = redactUrl(`postgres://app:${HOSTILE}@db:5432/x`);
    expect(redacted).not.toContain('rd%');
    expect(redacted).not.toContain(HOSTILE);
  });

  it.each([
    ['@ in the password', 'a@b'],
    [': in the password', 'a:b:c'],
    ['/ in the password', 'a/b'],
    ['% in the password', '100%sure'],
    ['quotes in the password', `it's "x"`],
    ['spaces in the password', 'a b c'],
  ])('hides a password with %s', (_label, password) => {
    const url = `postgresql://u:${encodeURIComponent(password)}@h:1/d`;
    const redacted = redactUrl(url);
    expect(redacted).toBe('postgresql://u:***@h:1/d');
  });
});

describe('redactText', () => {
  it('scrubs urls with hostile passwords from free text, whole', () => {
    const text = `connect failed: postgres://app:${HOSTILE_ENCODED}@db:5432/x refused`;
    const redacted = redactText(text);
    expect(redacted).not.toContain(HOSTILE_ENCODED);
    expect(redacted).not.toContain("'x");
    expect(redacted).toContain('refused');
  });
});
