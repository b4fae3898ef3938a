import { readFile, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { expect } from 'vitest';
import { json, type MigrateEnv } from './migrate-env.js';

/** Give an env's config tiers of the test's own (with limits) and a default tier. */
export async function setTiers(e: MigrateEnv, tiers: Record<string, unknown>, defaultTier: string): Promise<MigrateEnv> {
  const doc = parseDocument(await readFile(e.configFile, 'utf8'));
  doc.set('tiers', doc.createNode(tiers));
  doc.setIn(['defaults', 'tier'], defaultTier);
  await writeFile(e.configFile, doc.toString());
  return e;
}

/** Run the CLI with --json, expect exit 0, and return its document. */
export async function ok(e: MigrateEnv, args: string[]) {
  const r = await e.cli([...args, '--json']);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return json(r);
}
