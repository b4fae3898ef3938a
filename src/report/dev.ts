import type { DevShardResult } from '../dev/fleet.js';
import type { Output } from './output.js';
import { renderTable } from './table.js';

/** `tenantctl dev up|down|status|reset`: one row per embedded shard; ok when none failed. */
export function renderDevShards(out: Output, command: string, results: DevShardResult[]): boolean {
  const ok = results.every((r) => r.state !== 'failed');
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
