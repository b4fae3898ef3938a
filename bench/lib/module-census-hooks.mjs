// Loader hooks for module-census.mjs: report every module URL once it is loaded.
let port;
const seen = new Set();
export function initialize(data) {
  port = data.port;
}
export async function load(url, context, next) {
  const r = await next(url, context);
  if (!seen.has(url)) {
    seen.add(url);
    port.postMessage(url);
  }
  return r;
}
