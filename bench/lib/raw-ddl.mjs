#!/usr/bin/env node
// The raw-psql side of bench/bulk-create.sh: the DDL tenantctl runs to provision N schema-model
// tenants, written out as plain SQL scripts for psql.
//
//   node bench/lib/raw-ddl.mjs --out DIR --tenants 200 --database raw_bench --prefix b --sessions 1,4
//
// Writes DIR/raw-1-1.sql (every tenant, for one session) and, for S sessions, DIR/raw-S-1.sql ..
// DIR/raw-S-S.sql (the tenants split into S contiguous parts). Tenant i is slug <prefix>NNNN,
// exactly as in the CSV given to tenantctl, so names (schema t_<slug>, role tenant_<slug>) match.
//
// Per tenant, in one transaction, what tenantctl does for the schema model
// (src/placement/drivers.ts schema.prepare / finish, src/migrate/apply-target.ts):
//   create schema; create role ... login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
//   revoke all on schema from public;
//   set search_path to the schema; every migrations/*.sql file with {{tenant_key_type}} -> uuid
//   and {{tenant_key_column}} -> "tenant_id" (as src/migrate/template.ts renders them);
//   grant usage on schema, data privileges on all tables, usage+select on all sequences, and the
//   two alter default privileges; grant connect on database to the role (last, under the same
//   advisory lock tenantctl takes, since concurrent GRANTs on one database collide).
// Left out on purpose (tenantctl's bookkeeping, not the tenant's DDL): the catalog rows and
// events, the per-target migration lock, and the tenantctl.schema_migrations tracking rows.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    tenants: { type: 'string', default: '200' },
    database: { type: 'string', default: 'raw_bench' },
    prefix: { type: 'string', default: 'b' },
    sessions: { type: 'string', default: '1,4' },
    admin: { type: 'string', default: 'postgres' },
    migrations: { type: 'string', default: join(REPO, 'migrations') },
    keyColumn: { type: 'string', default: 'tenant_id' },
    keyType: { type: 'string', default: 'uuid' },
  },
});
if (!values.out) {
  process.stderr.write('usage: node bench/lib/raw-ddl.mjs --out DIR [--tenants N] [--database DB] [--prefix P] [--sessions 1,4]\n');
  process.exit(2);
}

const ident = (name) => `"${name.replace(/"/g, '""')}"`;
const literal = (value) => `'${value.replace(/'/g, "''")}'`;
const slugIdent = (slug) => slug.replace(/-/g, '_');
const vars = { tenant_key_column: ident(values.keyColumn), tenant_key_type: values.keyType };
const migrations = readdirSync(values.migrations)
  .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
  .sort()
  .map((f) => {
    const sql = readFileSync(join(values.migrations, f), 'utf8');
    if (sql.replace(/^\uFEFF/, '').startsWith('-- tenantctl:no-transaction')) {
      throw new Error(`${f} runs outside a transaction; this generator only handles transactional migrations`);
    }
    return {
      file: f,
      sql: sql.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (_m, name) => {
        if (!Object.hasOwn(vars, name)) throw new Error(`${f}: unknown placeholder {{${name}}}`);
        return vars[name];
      }),
    };
  });

export function slugs(n, prefix) {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(4, '0')}`);
}

function tenantBlock(slug) {
  const schema = ident(`t_${slugIdent(slug)}`);
  const role = ident(`tenant_${slugIdent(slug)}`);
  const db = ident(values.database);
  const admin = ident(values.admin);
  return [
    `-- tenant ${slug}`,
    'begin;',
    `create schema ${schema};`,
    `create role ${role} login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;`,
    `revoke all on schema ${schema} from public;`,
    `set local search_path = ${schema}, public;`,
    ...migrations.map((m) => `-- ${m.file}\n${m.sql.trim()}\n`),
    `grant usage on schema ${schema} to ${role};`,
    `grant select, insert, update, delete on all tables in schema ${schema} to ${role};`,
    `grant usage, select on all sequences in schema ${schema} to ${role};`,
    `alter default privileges for role ${admin} in schema ${schema} grant select, insert, update, delete on tables to ${role};`,
    `alter default privileges for role ${admin} in schema ${schema} grant usage, select on sequences to ${role};`,
    // Concurrent GRANTs on one database fail with "tuple concurrently updated"; tenantctl
    // serialises them with this advisory lock (src/placement/roles.ts grantConnect), so do we.
    // Last in the transaction, so that the lock is held only until the commit just after.
    `select pg_advisory_xact_lock(${0x7461636c}, hashtext(${literal(values.database)}));`,
    `grant connect on database ${db} to ${role};`,
    'commit;',
    '',
  ].join('\n');
}

const all = slugs(Number(values.tenants), values.prefix);
for (const s of values.sessions.split(',').map(Number)) {
  const per = Math.ceil(all.length / s);
  for (let i = 0; i < s; i++) {
    const part = all.slice(i * per, (i + 1) * per);
    writeFileSync(join(values.out, `raw-${s}-${i + 1}.sql`), part.map(tenantBlock).join('\n'));
  }
}
