import type { DevShardResult } from '../dev/fleet.js';
import type { Output } from './output.js';
import { renderTable } from './table.js';

/**
 * `tenantctl dev up|down|status|reset`: one row per embedded shard; ok when every shard is
 * `healthy` (by default: none failed; `dev status` also wants each one running).
 */
export function renderDevShards(
  out: Output,
  command: string,
  results: DevShardResult[],
  healthy: (r: DevShardResult) => boolean = (r) => r.state !== 'failed',
): boolean {
  const ok = results.every(healthy);
  if (out.json) out.document({ command, ok, results });
  else
    out.print(
      renderTable(
        out,
        ['shard', 'region', 'port', 'state', 'data'],
        results.map((r) => [r.shard, r.region, r.port, r.error ? `${r.state}: ${r.error}` : r.state, r.dataDir]),
      ),
    );
  return ok;
}
