/** A duration as the config and the flags write it: 500ms, 5s, 2min. */
export const DURATION = /^(\d+)(ms|s|min)$/;

/** '500ms', '5s', '2min' in milliseconds; undefined for anything else (each caller words its own error). */
export function parseDurationMs(value: string): number | undefined {
  const m = DURATION.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}
