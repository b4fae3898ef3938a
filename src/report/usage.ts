import type { UsageReport } from '../usage/measure.js';
import type { Output } from './output.js';
import { errorText } from './results.js';
import { renderTable } from './table.js';

/** Bytes for people: 1536 → '1.5 kB'. */
export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export interface UsageDocument extends UsageReport {
  command: 'usage';
  ok: boolean;
  overQuota: number;
}

export function usageDocument(r: UsageReport): UsageDocument {
  const overQuota = r.tenants.filter((t) => t.over.length > 0).length;
  return { command: 'usage', ok: r.failures.length === 0, overQuota, ...r };
}

/**
 * Per tenant (with --top, only each shard's heaviest), then per shard, then what is absent and
 * why; over-quota tenants marked.
 */
export function renderUsage(out: Output, doc: UsageDocument, top?: number): void {
  if (out.json) {
    out.document(doc);
    return;
  }
  const keep = top === undefined ? null : new Set(doc.shards.flatMap((s) => s.heaviest.map((h) => h.tenant)));
  const quota = (v: number | null, f: (n: number) => string = String) => (v === null ? '' : f(v));
  const rows = doc.tenants
    .filter((t) => !keep || keep.has(t.tenant))
    .sort((a, b) => a.shard.localeCompare(b.shard) || b.bytes - a.bytes)
    .map((t) => [
      t.tenant,
      t.tier,
      t.shard,
      humanBytes(t.bytes),
      quota(t.quotas.storage, humanBytes),
      t.rows,
      quota(t.quotas.rows),
      t.connections,
      quota(t.quotas.connections),
      t.calls ?? '',
      t.execMs === undefined ? '' : `${Math.round(t.execMs)}ms`,
      t.over.length ? out.color.red(`OVER: ${t.over.join(', ')}`) : '',
    ]);
  out.print(renderTable(out, ['tenant', 'tier', 'shard', 'bytes', 'quota', 'rows', 'quota', 'conns', 'quota', 'calls', 'exec', ''], rows));
  out.print(
    renderTable(
      out,
      ['shard', 'region', 'tenants', 'bytes', 'share of region', 'rows', 'conns', 'over quota', 'heaviest'],
      doc.shards.map((s) => [
        s.shard,
        s.region,
        s.tenants,
        humanBytes(s.bytes),
        `${(s.regionShare * 100).toFixed(1)}%`,
        s.rows,
        s.connections,
        s.overQuota,
        s.heaviest.map((h) => h.tenant).join(' '),
      ]),
    ),
  );
  for (const s of doc.shards) if (s.statements) out.info(`calls/exec absent on ${s.shard}: ${s.statements}`);
  if (doc.estimate) out.info(doc.estimate.note);
  for (const f of doc.failures) out.error(`not measured: ${f.tenant} (${f.target}): ${errorText(f)}`);
  const line = `usage: ${doc.tenants.length} tenant(s), ${doc.overQuota} over quota, in ${(doc.durationMs / 1000).toFixed(1)}s`;
  out.print(doc.overQuota || !doc.ok ? out.color.red(line) : line);
}
