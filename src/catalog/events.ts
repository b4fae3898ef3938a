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
  await db.insertInto('events').values(eventValues(e)).execute();
}

/** An event's row (redacted), for recordEvent or a statement that writes it with the change it logs. */
export function eventValues(e: EventInput) {
  const { actor, ciJob } = currentActor();
  return {
    actor,
    ci_job: ciJob,
    command: e.command,
    tenant_slug: e.tenant ?? null,
    action: e.action,
    result: e.result,
    details: e.details ? JSON.stringify(redactDeep(e.details)) : null,
  };
}

export async function recentEvents(db: CatalogDb, slug: string, limit = 10): Promise<EventRow[]> {
  return db.selectFrom('events').selectAll().where('tenant_slug', '=', slug).orderBy('id', 'desc').limit(limit).execute();
}
