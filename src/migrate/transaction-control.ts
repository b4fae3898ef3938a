import { splitStatements } from './split.js';

/**
 * The first statement of a transactional file that would end (or pretend to open) the one
 * transaction tenantctl runs the file in: `commit` there commits what came before it with no
 * tracking row and no way back, runs the rest without the transaction's settings (search_path
 * among them: unqualified names then resolve elsewhere), and the report would still say the file
 * was rolled back. Savepoints stay inside the transaction and are allowed. The body of a
 * `begin atomic … end` function is not a statement of the file.
 *
 * @example transactionControl('begin;\nalter table t add c int;\ncommit;') // { line: 1, statement: 'BEGIN' }
 */
export function transactionControl(sql: string): { line: number; statement: string } | null {
  let inAtomicBody = false;
  for (const st of splitStatements(sql)) {
    if (inAtomicBody) {
      // The body's own statements, up to its END (which closes the function's statement).
      if (/^end\b/i.test(st.sql)) inAtomicBody = false;
      continue;
    }
    if (/\bbegin\s+atomic\b/i.test(st.sql) && !/\bend\s*$/i.test(st.sql)) {
      inAtomicBody = true;
      continue;
    }
    const m = /^(begin|start\s+transaction|commit|end|rollback(?!\s+to\b)|abort|prepare\s+transaction)\b/i.exec(st.sql);
    if (m) return { line: st.line, statement: m[1].replace(/\s+/g, ' ').toUpperCase() };
  }
  return null;
}
