/**
 * Node 21 and newer define `navigator.userAgent` ("Node.js/21"); Node 20 does not. Without it,
 * pg's Cloudflare check (pg/lib/stream.js) builds a fetch `Response` to sniff the runtime, which
 * loads undici: about 120 ms of every command's start-up for nothing. The same value Node 21
 * gives, set only where Node left it undefined.
 */
if (typeof (globalThis as { navigator?: unknown }).navigator === 'undefined') {
  Object.defineProperty(globalThis, 'navigator', {
    value: Object.freeze({ userAgent: `Node.js/${process.versions.node.split('.')[0]}` }),
    configurable: true,
    writable: true,
  });
}
