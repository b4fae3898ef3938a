#!/usr/bin/env node
// Places outside src/placement/ that branch on the model or read its traits (issue 18): the
// figure the architecture keeps at ≤ 5. Counted on the syntax tree (TypeScript compiler API), one
// per source line:
//   trait    MODEL_TRAITS, shapeOf(), modelsWith() used (imports not counted)
//   literal  a model name compared (=== / !== / switch case) with something named *model
//   kind     a driver kind or placement shape computed from the model compared with a literal
//            ('shared-tables', 'own-placement', …)
// Listed apart, not in the figure: `same model` comparisons of two placements (a.model === b.model),
// which ask whether two ends differ, not which model one is.
// Usage: node scripts/model-branches.mjs [--list] [--json]
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = new URL('..', import.meta.url).pathname;
const SRC = join(ROOT, 'src');
const MODELS = new Set(['pool', 'schema', 'database']);
const KINDS = new Set(['shared-tables', 'own-placement', 'shared-database', 'own-database']);
const TRAIT_NAMES = new Set(['MODEL_TRAITS', 'shapeOf', 'modelsWith']);

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const isLiteral = (n, set) => (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) && set.has(n.text);
// A kind or shape computed from the model (a driver's kind, shapeOf), not a unit's own type.
const fromModel = (n) => /shapeOf\(|drivers?\b|\.model\b|MODEL_TRAITS/.test(n.getText());
const endsWithModel = (n) => /model$/i.test(n.getText().replace(/[!?]/g, ''));

const places = [];
const sameModel = [];
for (const file of files(SRC)) {
  const rel = relative(ROOT, file);
  if (rel.startsWith('src/placement/')) continue;
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found = new Map();
  const note = (node, why, into = found) => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    if (!into.has(line)) into.set(line, { file: rel, line, why, text: sf.text.split('\n')[line - 1].trim() });
  };
  const same = new Map();
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return;
    if (ts.isIdentifier(node) && TRAIT_NAMES.has(node.text)) note(node, 'trait');
    if (
      ts.isBinaryExpression(node) &&
      [ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken].includes(node.operatorToken.kind)
    ) {
      const { left: l, right: r } = node;
      if ((isLiteral(r, MODELS) && endsWithModel(l)) || (isLiteral(l, MODELS) && endsWithModel(r))) note(node, 'literal');
      else if ((isLiteral(r, KINDS) && fromModel(l)) || (isLiteral(l, KINDS) && fromModel(r))) note(node, 'kind');
      else if (endsWithModel(l) && endsWithModel(r)) note(node, 'same model', same);
    }
    if (
      ts.isCaseClause(node) &&
      isLiteral(node.expression, MODELS) &&
      ts.isSwitchStatement(node.parent.parent) &&
      endsWithModel(node.parent.parent.expression)
    )
      note(node, 'literal');
    if (ts.isCaseClause(node) && isLiteral(node.expression, KINDS) && fromModel(node.parent.parent.expression)) note(node, 'kind');
    ts.forEachChild(node, visit);
  };
  visit(sf);
  places.push(...found.values());
  sameModel.push(...same.values());
}

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ places: places.length, list: places, sameModel }, null, 2));
} else {
  if (process.argv.includes('--list')) {
    for (const p of places) console.log(`${p.file}:${p.line}  [${p.why}]  ${p.text}`);
    for (const p of sameModel) console.log(`${p.file}:${p.line}  [same model, not counted]  ${p.text}`);
  }
  const byFile = new Set(places.map((p) => p.file)).size;
  console.log(
    `${places.length} place(s) in ${byFile} file(s) outside src/placement/ branch on the model or read its traits; ${sameModel.length} same-model comparison(s) not counted`,
  );
}
