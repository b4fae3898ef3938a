import { redactDeep } from '../config/redact.js';
import type { NewCredentials } from '../provision/credentials.js';
import type { Output } from './output.js';

/**
 * `tenant credentials`: the new password, shown this once (tenantctl keeps no copy). With --json
 * one document a secret manager can take as it is (username, password, host, port, database,
 * schema, the URL with *** where the password goes); otherwise the password on a line of its own
 * and how to use it on stderr.
 */
export function renderCredentials(out: Output, command: string, c: NewCredentials): void {
  const r = c.resolved;
  if (out.json) {
    const doc = redactDeep({
      command,
      ok: true,
      tenant: c.tenant.slug,
      rotated: c.rotated,
      sessionsEnded: c.sessionsEnded,
      username: c.role,
      host: r.host,
      port: r.port,
      database: r.database,
      schema: r.schema,
      url: r.url,
      ...(c.keptSource ? { keptSource: c.keptSource } : {}),
    });
    out.reveal(JSON.stringify({ ...doc, password: c.password }, null, 2), c.password);
    return;
  }
  out.info(`${c.rotated ? 'new password' : 'password'} for ${c.role} (${c.tenant.slug}); shown once, tenantctl keeps no copy:`);
  out.reveal(c.password, c.password);
  out.info(`url: ${r.url}  (the password goes where *** is)`);
  const kept = c.keptSource;
  if (kept?.error)
    out.error(
      out.color.yellow(
        `warning: not set on ${kept.role} at shard ${kept.shard}, the old placement its move keeps (${kept.error}): it keeps its old password there until tenantctl move complete ${c.tenant.slug}; run tenantctl tenant credentials ${c.tenant.slug} --rotate once shard ${kept.shard} answers`,
      ),
    );
  else if (kept)
    out.info(
      `also set on ${kept.role} at shard ${kept.shard}, the old placement its move keeps until tenantctl move complete ${c.tenant.slug} (a rollback finds it working there)`,
    );
  if (c.rotated)
    out.info(
      `the old password no longer works${c.sessionsEnded ? ` and ${c.sessionsEnded === 1 ? 'the session it opened was' : `the ${c.sessionsEnded} sessions it opened were`} ended` : ''}: update the application now`,
    );
}
