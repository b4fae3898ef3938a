// TEMPORARY (not for merge): TENANTCTL_TRACE_TIMELINE=1 prints a timeline of one run on exit.
import { performance } from 'node:perf_hooks';
import pg from 'pg';

const on = Boolean(process.env.TENANTCTL_TRACE_TIMELINE);
const marks: [string, number][] = [];
const once = new Set<string>();
export function mark(name: string, first = false): void {
  if (!on) return;
  if (first) {
    if (once.has(name)) return;
    once.add(name);
  }
  marks.push([name, performance.now()]);
}
export function markLast(name: string): void {
  if (!on) return;
  const i = marks.findIndex((m) => m[0] === name);
  if (i >= 0) marks.splice(i, 1);
  marks.push([name, performance.now()]);
}
if (on) {
  const q = pg.Client.prototype.query;
  (pg.Client.prototype as unknown as { query: unknown }).query = function (this: unknown, ...a: unknown[]) {
    mark('first query', true);
    return (q as (...x: unknown[]) => unknown).apply(this, a);
  };
  process.on('exit', () => {
    mark('exit');
    const cpu = process.cpuUsage();
    process.stderr.write(
      `${marks.map(([n, t]) => `trace ${t.toFixed(0).padStart(6)} ms  ${n}`).join('\n')}\ntrace node cpu user ${(cpu.user / 1000).toFixed(0)} sys ${(cpu.system / 1000).toFixed(0)} ms\n`,
    );
  });
}
