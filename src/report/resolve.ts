import type { Resolved } from '../placement/resolve.js';
import type { Output } from './output.js';

/** `tenantctl resolve`: the document (--json) or one `name value` line per field. */
export function renderResolved(out: Output, r: Resolved): void {
  if (out.json) {
    out.document({ command: 'resolve', ok: true, ...r });
    return;
  }
  const rows = Object.entries(r).map(([k, v]) => [k, typeof v === 'object' ? `${v.name} = ${v.value}` : String(v)]);
  out.print(rows.map(([k, v]) => `${k.padEnd(11)} ${v}`).join('\n'));
}
