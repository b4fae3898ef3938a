// Runs npm scripts at once (`npm test`'s pretest: lint, the type checks and the build do not depend on each
// other), each one's output held and printed whole when it ends so two never interleave. Exits
// with the first failing script's code once every script has ended, naming each that failed.
//
//   node scripts/run-parallel.mjs lint typecheck:src typecheck:tests build
import { spawn } from 'node:child_process';

const names = process.argv.slice(2);
if (!names.length) {
  console.error('usage: node scripts/run-parallel.mjs <npm script>...');
  process.exit(2);
}

const run = (name) =>
  new Promise((resolve) => {
    const started = Date.now();
    const child = spawn('npm', ['run', '--silent', name], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    child.on('error', (err) => out.push(Buffer.from(`${err.message}\n`)));
    child.on('close', (code, signal) => {
      const status = code ?? (signal ? 1 : 0);
      process.stdout.write(
        `> ${name}: ${status === 0 ? 'ok' : `failed (exit ${code ?? signal})`} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
      process.stdout.write(Buffer.concat(out));
      resolve({ name, status });
    });
  });

const results = await Promise.all(names.map(run));
const failed = results.filter((r) => r.status !== 0);
if (failed.length) {
  console.error(`failed: ${failed.map((r) => r.name).join(', ')}`);
  process.exit(failed[0].status);
}
