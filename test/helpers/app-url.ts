import { expect } from 'vitest';
import { json, type MigrateEnv } from './migrate-env.js';

/** The password tests give a tenant's own role (the operator's step, done as the shard role). */
export const PASSWORD = 'app-pw-1';

/** The application's URL from `resolve`, with the password it was given (tenant role) or the serving role's. */
export async function appUrl(e: MigrateEnv, slug: string): Promise<{ url: string; schema: string; role: string; resolved: any }> {
  const r = await e.cli(['resolve', slug, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const doc = json(r);
  const u = new URL(doc.url);
  if (doc.role === e.config.servingRole.name) u.password = encodeURIComponent(e.config.servingRole.password ?? '');
  else {
    // Tenant roles have no password yet: the operator's step, done here as the shard role.
    await e.q(doc.shard, 'postgres', `alter role "${doc.role}" password '${PASSWORD}'`);
    u.password = PASSWORD;
  }
  return { url: u.toString(), schema: doc.schema, role: doc.role, resolved: doc };
}
