import type { ForeignKeyPath } from '../copy/pool-load-path.js';
import { escapeControl } from './escape.js';

/** Which way a load checked foreign keys, and why (how to get the faster way when there is one): a move's and a restore's words. */
export function foreignKeysLine(f: ForeignKeyPath): string {
  return `foreign keys checked ${f.path}: ${escapeControl(f.why)}`;
}
