/**
 * Split a SQL script into statements at top-level semicolons. Needed for migrations that run
 * outside a transaction: PostgreSQL runs a multi-statement query string as one implicit
 * transaction, where CREATE INDEX CONCURRENTLY is refused, so each statement is sent on its own.
 *
 * Understands '…' strings (with '' and E'\'' escapes), "…" identifiers, $tag$…$tag$ bodies,
 * -- line comments and nested /* *\/ comments. Leading comments are dropped from each statement,
 * and statements that are only comments are dropped.
 *
 * @example
 *   splitStatements("create table a (x int); -- note\ninsert into a values (1);")
 *   // [{ sql: 'create table a (x int)', line: 1 }, { sql: 'insert into a values (1)', line: 2 }]
 */
export interface Statement {
  sql: string;
  /** 1-based line of the statement's first character in the script. */
  line: number;
}

export function splitStatements(script: string): Statement[] {
  const out: Statement[] = [];
  let start = 0;
  let i = 0;
  const n = script.length;

  const push = (end: number) => {
    const from = skipComments(script, start, end);
    const sql = script.slice(from, end).trim();
    if (sql) out.push({ sql, line: lineAt(script, from) });
    start = end + 1;
  };

  while (i < n) {
    const c = script[i];
    const next = script[i + 1];
    if (c === '-' && next === '-') {
      const eol = script.indexOf('\n', i);
      i = eol < 0 ? n : eol + 1;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (script[i] === '/' && script[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (script[i] === '*' && script[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(script[i - 1]) && (i < 2 || !/[A-Za-z0-9_]/.test(script[i - 2]));
      i++;
      while (i < n) {
        if (escapes && script[i] === '\\') i += 2;
        else if (script[i] === "'" && script[i + 1] === "'") i += 2;
        else if (script[i] === "'") {
          i++;
          break;
        } else i++;
      }
    } else if (c === '"') {
      i++;
      while (i < n) {
        if (script[i] === '"' && script[i + 1] === '"') i += 2;
        else if (script[i] === '"') {
          i++;
          break;
        } else i++;
      }
    } else if (c === '$' && !(i > 0 && /[A-Za-z0-9_]/.test(script[i - 1]))) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i, i + 66));
      if (m) {
        const close = script.indexOf(m[0], i + m[0].length);
        i = close < 0 ? n : close + m[0].length;
      } else i++;
    } else if (c === ';') {
      push(i);
      i++;
    } else i++;
  }
  push(n);
  return out;
}

/** The offset of the first character after leading whitespace and comments. */
function skipComments(script: string, from: number, end: number): number {
  let i = from;
  while (i < end) {
    if (/\s/.test(script[i])) i++;
    else if (script[i] === '-' && script[i + 1] === '-') {
      const eol = script.indexOf('\n', i);
      i = eol < 0 || eol > end ? end : eol + 1;
    } else if (script[i] === '/' && script[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < end && depth > 0) {
        if (script[i] === '/' && script[i + 1] === '*') depth++, (i += 2);
        else if (script[i] === '*' && script[i + 1] === '/') depth--, (i += 2);
        else i++;
      }
    } else break;
  }
  return Math.min(i, end);
}

/** 1-based line number of a character offset. */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let k = 0; k < offset && k < text.length; k++) if (text.charCodeAt(k) === 10) line++;
  return line;
}
