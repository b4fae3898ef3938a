import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { TenantRow } from '../../src/catalog/tables.js';
import { parseConfig } from '../../src/config/load.js';
import { registerSecret } from '../../src/config/redact.js';
import type { Model } from '../../src/config/types.js';
import { newPassword, scramVerifier } from '../../src/placement/credentials.js';
import { credentialsNote, resolveTenant } from '../../src/placement/resolve.js';
import { createOutput } from '../../src/report/output.js';

const SHIPPED_FILE = fileURLToPath(new URL('../../tenants.config.yaml', import.meta.url));
const config = parseConfig(readFileSync(SHIPPED_FILE, 'utf8'), SHIPPED_FILE, {});

function row(model: Model, database: string, schema: string): TenantRow {
  return {
    id: 1,
    slug: 'acme',
    key: '4f0c6a54-8a3e-4b6a-9d53-2d1f8e1c0a11',
    name: 'acme',
    tier: 'free',
    model,
    region: 'us-east',
    shard: 'us1',
    database_name: database,
    schema_name: schema,
    residency: null,
    status: 'active',
    status_detail: null,
    schema_version: null,
    created_at: new Date(0),
    updated_at: new Date(0),
  };
}

/** A stream that keeps what is written to it. */
function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, done) {
      w.text += String(chunk);
      done();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

describe('resolve URLs run unqualified queries as printed', () => {
  it('every model sets search_path in the URL; the pool sets its tenant setting beside it', () => {
    const pool = new URL(resolveTenant(config, row('pool', 'tenant_pool', 'app')).url);
    // …and its tier's session limits (the shipped free tier: issue 19), with its slug as application_name.
    expect(pool.searchParams.get('options')).toBe(
      '-c app.tenant_id=4f0c6a54-8a3e-4b6a-9d53-2d1f8e1c0a11 -c search_path=app -c statement_timeout=5000 -c lock_timeout=2000 -c idle_in_transaction_session_timeout=30000 -c work_mem=4096kB',
    );
    expect(pool.searchParams.get('application_name')).toBe(row('pool', 'tenant_pool', 'app').slug);
    expect(pool.password).toBe('***');
    const schema = new URL(resolveTenant(config, row('schema', 'tenant_schemas', 't_acme')).url);
    expect(schema.searchParams.get('options')).toBe('-c search_path=t_acme');
    expect(schema.username).toBe('tenant_acme');
    const database = resolveTenant(config, row('database', 't_acme', 'app'));
    expect(new URL(database.url).searchParams.get('options')).toBe('-c search_path=app');
    // %20, not '+': libpq decodes only percent-escapes.
    expect(database.url).toMatch(/\?options=-c%20search_path%3Dapp$/);
    expect(database.url).toMatch(/^postgres:\/\/tenant_acme:\*\*\*@/);
  });

  it("a text key with spaces and quotes stays one setting in the URL's options and one literal in the scope", () => {
    const key = "Acme Corp's #1\\x";
    const r = resolveTenant(config, { ...row('pool', 'tenant_pool', 'app'), key });
    const options = new URL(r.url).searchParams.get('options') ?? '';
    // libpq splits options at white space; a backslash keeps a space (or a backslash) in the value.
    expect(options.startsWith(`-c ${config.rls.setting}=Acme\\ Corp's\\ #1\\\\x -c search_path=app`)).toBe(true);
    expect(r.scope).toContain(`set_config('${config.rls.setting}', 'Acme Corp''s #1\\x', true)`);
  });

  it('credentialsNote says where the password comes from, or what to run when there is none', () => {
    const schema = row('schema', 'tenant_schemas', 't_acme');
    expect(credentialsNote(config, schema, { hasPassword: false, setAt: null })).toBe(
      'no password yet: run tenantctl tenant credentials acme (prints it once)',
    );
    expect(credentialsNote(config, schema, { hasPassword: true, setAt: '2026-01-02T03:04:05.000Z' })).toMatch(
      /^set by tenantctl at 2026-01-02T03:04:05\.000Z; tenantctl does not keep it/,
    );
    expect(credentialsNote(config, schema, 'unreachable')).toBe('unknown: shard us1 did not answer');
    expect(credentialsNote(config, row('pool', 'tenant_pool', 'app'), null)).toMatch(/servingRole\.password in the config/);
  });
});

describe('passwords', () => {
  it('are 32 URL-safe characters, different each time', () => {
    const a = newPassword();
    expect(a).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(newPassword()).not.toBe(a);
  });

  it('reach PostgreSQL only as a SCRAM-SHA-256 verifier', () => {
    const salt = Buffer.alloc(16, 7);
    const v = scramVerifier('pencil', salt);
    expect(v).toMatch(/^SCRAM-SHA-256\$4096:BwcHBwcHBwcHBwcHBwcHBw==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
    expect(v).not.toContain('pencil');
    expect(scramVerifier('pencil', salt)).toBe(v);
    expect(scramVerifier('pencil2', salt)).not.toBe(v);
  });

  it('are printed by reveal only: every other output path scrubs them, and other secrets stay scrubbed in reveal', () => {
    const stdout = sink();
    const stderr = sink();
    const out = createOutput({ json: false, stdout: stdout as never, stderr: stderr as never, env: {} });
    const pw = newPassword();
    registerSecret(pw);
    registerSecret('other-secret-1');
    out.print(`print ${pw}`);
    out.info(`info ${pw}`);
    out.error(`error ${pw}`);
    out.reveal(`reveal ${pw} other-secret-1`, pw);
    expect(stdout.text).toBe(`print ***\nreveal ${pw} ***\n`);
    expect(stderr.text).toBe('info ***\nerror ***\n');
  });
});
