import type { Check } from '../doctor/checks.js';
import { styled } from './escape.js';
import type { Output } from './output.js';
import { renderTable } from './table.js';

/** `tenantctl doctor`: the checks as one document (--json) or a table; ok when every check passed. */
export function renderDoctor(out: Output, checks: Check[]): boolean {
  const ok = checks.every((c) => c.ok);
  if (out.json) out.document({ command: 'doctor', ok, checks });
  else
    out.print(
      renderTable(
        out,
        ['check', 'ok', 'detail'],
        checks.map((c) => [
          c.check,
          styled(!c.ok ? out.color.red('FAIL') : c.warning ? out.color.yellow('WARN') : out.color.green('ok')),
          c.detail,
        ]),
      ),
    );
  return ok;
}
