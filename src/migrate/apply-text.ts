import { literal } from '../sql.js';
import type { MigrationFile } from './files.js';
import { searchPathSetting } from '../placement/target-search-path.js';
import { recordAppliedParts } from './tracking.js';

/** The guard's error when the schema is gone since the caller's read (apply-one-round-trip.ts). */
export const CHANGED_MARKER = 'tenantctl:state-changed:';

/** Where a file's SQL sits in a message: an error's position maps back into the file. */
export interface FilePart {
  m: MigrationFile;
  offset: number;
  sql: string;
}

/**
 * The transactions of a target's pending migrations as message text: per migration `begin;
 * settings (and, first, the guard); the file; its tracking row; commit;`. Every statement costs the
 * server a parse, a plan and a result, so a migration is five, and the guard reads no table: the
 * schema exists (otherwise search_path would fall through to public). That no other run applied a
 * pending migration since the caller's read is checked by the tracking table's primary key, in
 * the same transaction as the file, not by a count over the target's history.
 *
 * Everything but the schema is built once: a batch of 128 targets with the same pending files and
 * settings shares it, and only the schema's literals are made per target.
 */
export class TransactionsText {
  private readonly steps: { m: MigrationFile; sql: string; before: string; after: string }[];

  /**
   * `settings`: the set_config calls after search_path's (TargetSession.otherSettings); `timed`: the
   * tracking table's default measures duration_ms (KnownState.timed).
   */
  constructor(
    pending: readonly MigrationFile[],
    sqlOf: (m: MigrationFile) => string,
    private readonly settings: string,
    timed = false,
  ) {
    this.steps = pending.map((m) => {
      const [before, after] = recordAppliedParts(m, timed);
      return { m, sql: sqlOf(m), before, after };
    });
  }

  /** `text` followed by the schema's transactions; `parts` (when given) gets where each file sits. */
  append(text: string, schema: string, parts?: FilePart[]): string {
    const lit = literal(schema);
    const begin = `begin; select where concat(${searchPathSetting(schema)}${this.settings}`;
    for (let i = 0; i < this.steps.length; i++) {
      const { m, sql, before, after } = this.steps[i];
      // Settings and (first) the guard in one SELECT: every statement costs a result to parse. A
      // function call, not a subquery: no plan of its own, no scan. No column and no row either
      // (concat evaluates every argument and is never null): nothing for the server to send or
      // for this process to parse but the statement's end.
      text +=
        i === 0
          ? `${begin}, case when to_regnamespace(${lit}) is not null then 0 else ('${CHANGED_MARKER}' || random())::int end) is null;\n`
          : `${begin}) is null;\n`;
      parts?.push({ m, offset: text.length, sql });
      // The newline ends a trailing line comment of the file.
      text += `${sql}\n;\n${before}${lit}${after}; commit;`;
    }
    return text;
  }
}
