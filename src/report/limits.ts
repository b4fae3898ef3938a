import type { ResultDocument } from '../fanout/result.js';
import type { LimitsResult } from '../limits/apply.js';
import type { SetTierResult } from '../limits/set-tier.js';
import type { Output } from './output.js';
import { renderResultDocument } from './results.js';
import { renderTable } from './table.js';
import { passwordNeededLine } from './move.js';

const shown = (v: string | null) => v ?? '(none)';

/** `tenant limits apply`: one line per change (dry run: what would change), then the summary. */
export function renderLimitsApply(out: Output, doc: ResultDocument<LimitsResult>, dryRun: boolean): void {
  if (!out.json) {
    const rows = doc.results.flatMap((r) => r.changes.map((c) => [r.tenant, r.tier, c.what, shown(c.from), shown(c.to)]));
    if (rows.length) out.print(renderTable(out, ['tenant', 'tier', 'limit', dryRun ? 'now' : 'was', dryRun ? 'would be' : 'now'], rows));
    const same = doc.results.filter((r) => r.status === 'succeeded' && r.changes.length === 0).length;
    out.print(`${same} tenant(s) already match their tier${dryRun ? '; dry run: nothing was changed' : ''}`);
  }
  renderResultDocument(out, doc);
}

/** `tenant set-tier`: the limits changed and the move (planned, or run). */
export function renderSetTier(out: Output, command: string, r: SetTierResult): void {
  if (out.json) {
    out.document({ command, ok: r.move?.status !== 'failed', ...r });
    return;
  }
  if (r.move?.status === 'failed') {
    out.print(
      `${r.tenant}: the move to ${r.movePlan?.to.target} failed (${r.move.error?.message ?? 'see tenantctl move status'}); the tier is still ${r.from}`,
    );
    return;
  }
  out.print(r.from === r.to ? `${r.tenant}: tier ${r.to} already` : `${r.tenant}: tier ${r.from} → ${r.to}`);
  if (r.changes.length)
    out.print(
      renderTable(
        out,
        ['limit', 'was', 'now'],
        r.changes.map((c) => [c.what, shown(c.from), shown(c.to)]),
      ),
    );
  else if (r.limitsOn === 'url')
    out.print('limits: nothing to change on a role (a pool tenant gets its limits from its URL: tenantctl resolve)');
  // A move to the tier's model applies the tier's limits at the new placement itself.
  else out.print(`limits: the role and database already have tier ${r.to}'s`);
  if (r.move) {
    out.print(`moved to ${r.move.to?.target} (${r.move.status}); tenantctl move complete ${r.tenant} drops the old placement`);
    // As `move` says it: the application's first login fails otherwise, with nothing here to say why.
    if (r.move.names?.passwordNeeded) out.print(passwordNeededLine(r.tenant, r.move.names));
  } else if (r.movePlan)
    out.print(
      `tier ${r.to} is the ${r.movePlan.to.model} model; ${r.tenant} is still ${r.movePlan.from.model} on ${r.movePlan.from.shard}.\n` +
        `planned move: ${r.movePlan.from.target} → ${r.movePlan.to.target} (offline: the model changes)\n` +
        `run it: tenantctl tenant set-tier ${r.tenant} ${r.to} --move --yes   (or ${r.movePlan.command})`,
    );
}
