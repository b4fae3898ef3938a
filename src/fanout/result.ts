import { EXIT } from '../errors.js';

/**
 * Result sets: one row per tenant, never a thrown error per tenant. The caller renders them and
 * computes the exit code from them.
 */
export type ResultStatus = 'succeeded' | 'failed' | 'skipped';

export interface ResultError {
  code: string;
  message: string;
  [extra: string]: unknown;
}

export interface TenantResult {
  tenant: string;
  status: ResultStatus;
  model?: string;
  region?: string;
  shard?: string;
  target?: string;
  durationMs?: number;
  /** When the fan-out started and finished this item (ISO times; absent when it never ran). */
  startedAt?: string;
  finishedAt?: string;
  reason?: string;
  error?: ResultError;
  [extra: string]: unknown;
}

export interface ResultSummary {
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  durationMs: number;
}

export interface ResultDocument<R extends TenantResult = TenantResult> {
  command: string;
  ok: boolean;
  summary: ResultSummary;
  results: R[];
  [extra: string]: unknown;
}

/**
 * @example
 *   const doc = resultDocument('tenant create', results, started);
 *   process.exitCode = exitCodeFor(doc);
 */
export function resultDocument<R extends TenantResult>(
  command: string,
  results: R[],
  startedAt: number,
  extra: Record<string, unknown> = {},
): ResultDocument<R> {
  const summary: ResultSummary = {
    total: results.length,
    succeeded: results.filter((r) => r.status === 'succeeded').length,
    failed: results.filter((r) => r.status === 'failed').length,
    skipped: results.filter((r) => r.status === 'skipped').length,
    durationMs: Date.now() - startedAt,
  };
  // Ctrl-C stopped it (a tenant interrupted at its clean point, or never started): a script
  // reading --json learns that from the document, as from the exit code (130).
  const interrupted = results.some(stoppedByInterrupt);
  return { command, ok: summary.failed === 0 && !interrupted, summary, results, ...(interrupted ? { interrupted: true } : {}), ...extra };
}

/** A tenant result of a fan-out Ctrl-C stopped: interrupted in its operation, or never started. */
function stoppedByInterrupt(r: TenantResult): boolean {
  return (r.status === 'skipped' && r.reason === 'interrupted') || (r.status === 'failed' && r.error?.code === 'INTERRUPTED');
}

export function exitCodeFor(doc: { ok: boolean }): number {
  return doc.ok ? 0 : 1;
}

/**
 * Exit 3 when every failure was a lock conflict (LOCKED: the tenant was busy with another
 * command; nothing of it was changed), as a single command on a busy tenant exits 3, so a cron
 * job sees "busy", not a failure. Exit 2 when nothing succeeded and every failure was refused
 * input (an error code whose exit is 2: nothing was changed). Else as exitCodeFor. `usage`
 * tells which codes are refusals.
 */
export function exitCodeForRefusals(doc: ResultDocument, usage: (code: string) => boolean): number {
  const failed = doc.results.filter((r) => r.status === 'failed');
  // Ctrl-C: 130, as for a single command (each interrupted row says what it left and how to finish).
  if (doc.results.some(stoppedByInterrupt)) return EXIT.interrupted;
  if (failed.length > 0 && failed.every((r) => r.error?.code === 'LOCKED')) return EXIT.locked;
  // A shard that does not answer failed those tenants: not bad input (a cron backup of a region
  // whose shard is down is exit 1, as migrate up and usage say it), whatever a single command says.
  const refused = (code: string) => code !== 'UNREACHABLE' && code !== 'SHARD_LOST' && usage(code);
  if (doc.summary.succeeded === 0 && failed.length > 0 && failed.every((r) => r.error && refused(r.error.code))) return EXIT.usage;
  return exitCodeFor(doc);
}
