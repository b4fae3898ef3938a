import type { Fleet } from '../fleet/fleet.js';
import { inTransaction } from '../fleet/fleet.js';
import { redactText } from '../config/redact.js';
import { errorMessage } from '../errors.js';
import type { Finding } from './types.js';
import type { Config } from '../config/types.js';
import { resetServingPassword } from '../placement/pool/serving-login.js';

export interface FixResult {
  check: string;
  shard: string;
  database: string;
  object: string;
  status: 'applied' | 'failed';
  error?: string;
}

/**
 * Apply the fixes tenantctl manages (policies, forcing, grants, CONNECT): per (shard, database),
 * each fix in its own transaction, so one that fails (e.g. an object tenantctl does not own)
 * leaves the others applied. Databases one at a time per shard: fixes are few and take locks.
 */
export async function applyFixes(fleet: Fleet, findings: Finding[], config?: Pick<Config, 'servingRole'>): Promise<FixResult[]> {
  const groups = new Map<string, Finding[]>();
  for (const f of findings.filter((x) => x.fixable && x.fix)) {
    const key = `${f.shard}\0${f.database}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const seen = new Set<string>();
  const out: FixResult[] = [];
  for (const list of groups.values()) {
    const { shard, database } = list[0];
    await fleet.withClient(shard, database, async (c) => {
      for (const f of list) {
        // Two findings on one table often share one fix (the table's protection block).
        if (seen.has(`${shard}\0${database}\0${f.fix}`)) continue;
        seen.add(`${shard}\0${database}\0${f.fix}`);
        try {
          // Its fix as shown names no secret ('***'): the password comes from the config here.
          if (f.check === 'role.serving-password') {
            if (!config) throw new Error('the config is needed to set the serving role password');
            await resetServingPassword(c, config);
          } else await inTransaction(c, () => c.query(f.fix!));
          out.push({ check: f.check, shard, database, object: f.object, status: 'applied' });
        } catch (err) {
          out.push({ check: f.check, shard, database, object: f.object, status: 'failed', error: redactText(fixFailure(err, f.fix!)) });
        }
      }
    });
  }
  return out;
}

/**
 * Why a fix failed, and who can apply it: an object tenantctl's role does not own (a view or
 * table a migration run by someone else made, a superuser's grant) is PostgreSQL's "must be
 * owner"; the statement is given for its owner to run.
 */
function fixFailure(err: unknown, fix: string): string {
  const message = errorMessage(err);
  if ((err as { code?: string }).code !== '42501') return message;
  return `${message}: the role tenantctl connects as may not change it; its owner (or a superuser) can run: ${fix}`;
}
