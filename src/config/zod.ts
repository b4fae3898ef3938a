/**
 * The config's schemas are written with zod/mini: the same checks and messages as zod's classic
 * API (one core), without the classic layer's methods built onto every schema object (about 5 ms
 * of CPU less to load and build them), and without the classic objects' fast path, a parser
 * compiled with `new Function` on an object's first parse (about 10 ms that the one parse of a
 * run never earns back). Import zod/mini where the schemas are written, and this module for the
 * messages: a namespace passed on as a value would keep all of zod/mini in the bundle, every
 * locale included.
 *
 * @module
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

// zod/mini ships no messages of its own; these are the ones the classic API sets up on import.
// Only `en`: `z.locales` would bring every language into the bundle.
z.config(en());

/** What `z.preprocess` is in the classic API: `fn` runs on the input before `schema` parses it. */
export function preprocess<S extends z.ZodMiniType>(fn: (v: unknown) => unknown, schema: S) {
  return z.pipe(z.transform(fn), schema);
}
