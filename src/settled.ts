/**
 * A promise's outcome kept as a value: started now, awaited later, and never an unhandled
 * rejection in between (work that runs beside other work and is read only when needed).
 *
 * @example
 *   const early = settled(countRows());   // runs while the rest goes on
 *   const rows = unsettle(await early);   // its value, or its error thrown here
 */
export type Settled<T> = { ok: T } | { err: unknown };

export function settled<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (ok) => ({ ok }),
    (err: unknown) => ({ err }),
  );
}

/** The value, or the error thrown. */
export function unsettle<T>(s: Settled<T>): T {
  if ('err' in s) throw s.err;
  return s.ok;
}
