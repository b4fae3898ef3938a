#!/usr/bin/env node
// Functions of src/ longer than a limit (default 80 lines), longest first, found with the
// TypeScript compiler API: declarations, methods, accessors, constructors, and function or
// arrow expressions (an arrow counts on its own; its lines also count in the function around it).
// Also prints the biggest file. Usage: node scripts/long-functions.mjs [--over N] [--json]
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = new URL('..', import.meta.url).pathname;
const at = process.argv.indexOf('--over');
const LIMIT = at > 0 ? Number(process.argv[at + 1]) : 80;

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function nameOf(node, sf) {
  if (node.name) return node.name.getText(sf);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const p = node.parent;
  if (p && ts.isVariableDeclaration(p)) return p.name.getText(sf);
  if (p && ts.isPropertyAssignment(p)) return p.name.getText(sf);
  if (p && ts.isCallExpression(p)) return `(callback of ${p.expression.getText(sf).slice(0, 40)})`;
  return '(anonymous)';
}

const long = [];
let biggest = { file: '', lines: 0 };
for (const file of files(join(ROOT, 'src'))) {
  const text = readFileSync(file, 'utf8');
  const rel = relative(ROOT, file);
  const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  if (lines > biggest.lines) biggest = { file: rel, lines };
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const visit = (node, inLong = false) => {
    let here = inLong;
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
      const n = end - start + 1;
      if (n > LIMIT) {
        long.push({ file: rel, line: start, name: nameOf(node, sf), lines: n, nested: inLong });
        here = true;
      }
    }
    ts.forEachChild(node, (c) => visit(c, here));
  };
  visit(sf);
}
long.sort((a, b) => b.lines - a.lines);
if (process.argv.includes('--json')) console.log(JSON.stringify({ limit: LIMIT, long, biggest }, null, 2));
else {
  for (const f of long)
    console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}${f.nested ? '  (inside a listed one)' : ''}`);
  const outer = long.filter((f) => !f.nested).length;
  console.log(
    `${long.length} function(s) over ${LIMIT} lines (${outer} not inside another listed one); biggest file ${biggest.file} (${biggest.lines} lines)`,
  );
}
