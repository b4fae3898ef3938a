import { readFile } from 'node:fs/promises';

/**
 * The last-success timestamp a textfile written before holds for `command`, or undefined (no
 * file, unreadable, never succeeded). Reads only the one sample line it needs.
 *
 * @example
 *   await previousLastSuccess('/var/lib/node_exporter/textfile/backup.prom', 'backup create'); // 1764900000.123
 */
export async function previousLastSuccess(path: string, command: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const label = `command="${command.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  for (const line of text.split('\n')) {
    if (!line.startsWith('tenantctl_last_success_timestamp_seconds{') || !line.includes(label)) continue;
    const value = Number(line.slice(line.lastIndexOf('}') + 1).trim());
    return Number.isFinite(value) && value > 0 ? value : undefined;
  }
  return undefined;
}
