import type { CatalogDb } from './open.js';
import type { EventRow } from './tables.js';
import { currentActor } from './actor.js';
import { redactDeep } from '../config/redact.js';

export interface EventInput {
  command: string;
  action: string;
  result: 'ok' | 'failed' | 'started' | string;
  tenant?: string | null;
  details?: Record<string, unknown>;
}

/**
 * Append one event to the log: who (OS user, CI job), what, to whom, with what result. Details
 * are redacted before they are stored.
 *
 * @example
 *   await recordEvent(db, { command: 'tenant create', action: 'provisioned', result: 'ok', tenant: 'acme' });
 */
export async function recordEvent(db: CatalogDb, e: EventInput): Promise<void> {
  const { actor, ciJob } = currentActor();
  await db
    .insertInto('events')
    .values({
      actor,
      ci_job: ciJob,
      command: e.command,
      tenant_slug: e.tenant ?? null,
      action: e.action,
      result: e.result,
      details: e.details ? JSON.stringify(redactDeep(e.details)) : null,
    })
    .execute();
}

export async function recentEvents(db: CatalogDb, slug: string, limit = 10): Promise<EventRow[]> {
  return db.selectFrom('events').selectAll().where('tenant_slug', '=', slug).orderBy('id', 'desc').limit(limit).execute();
}
