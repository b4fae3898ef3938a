/** `1 tenant`, `3 tenants`, `0 targets`: a count with its noun, singular for one. */
export function counted(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}
