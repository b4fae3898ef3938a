import { isScalar, LineCounter, parseDocument, visit, YAMLParseError } from 'yaml';
import { UsageError } from '../errors.js';
import { redactText } from './redact.js';

/** A config is a few kilobytes; a file past this is a mistake, or an attempt to stall tenantctl. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/**
 * Aliases (`*name`) that expand to collections, beyond which yaml stops: the guard against alias
 * bombs (a few lines that expand to billions of nodes). A config shares a block a few times at most.
 */
export const MAX_ALIAS_COUNT = 100;

export function assertConfigSize(bytes: number, file: string): void {
  if (bytes > MAX_CONFIG_BYTES) {
    throw new UsageError(
      'CONFIG_INVALID',
      `${file} is ${(bytes / 1024 / 1024).toFixed(1)} MB; a config may be at most ${MAX_CONFIG_BYTES / 1024 / 1024} MB`,
      'point --config (or TENANTCTL_CONFIG) at the fleet config; it lists regions, shards and settings only',
    );
  }
}

/**
 * Parse the config's YAML into plain data. yaml's own duplicate-key check compares every key with
 * every other (a 1 MB map of keys took over a minute), so it is off and keys are checked here with
 * a set per mapping instead.
 */
export function readYaml(text: string, file: string): unknown {
  assertConfigSize(Buffer.byteLength(text, 'utf8'), file);
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: true, lineCounter: lines });
  const first = doc.errors[0];
  if (first) throw yamlError(file, first instanceof YAMLParseError ? first.message.split('\n')[0] : String(first));
  let duplicate: string | undefined;
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        if (seen.has(key)) {
          const at = pair.key.range ? lines.linePos(pair.key.range[0]) : undefined;
          duplicate = `key "${key}" appears twice in one mapping${at ? ` at line ${at.line}, column ${at.col}` : ''}`;
          return visit.BREAK;
        }
        seen.add(key);
      }
      return undefined;
    },
  });
  if (duplicate) throw yamlError(file, duplicate);
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) {
      throw new UsageError(
        'CONFIG_YAML',
        `${file} uses YAML aliases (*name) that expand too far (more than ${MAX_ALIAS_COUNT} aliases to collections)`,
        'write the repeated settings out, or share fewer blocks with anchors and aliases',
      );
    }
    throw yamlError(file, err instanceof Error ? err.message : String(err));
  }
}

function yamlError(file: string, detail: string): UsageError {
  return new UsageError('CONFIG_YAML', `${file} is not valid YAML: ${redactText(detail)}`, 'fix the YAML syntax at that line');
}
