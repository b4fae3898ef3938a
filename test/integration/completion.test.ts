import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';

/**
 * Shell completion and the man page (issue 21 item 3). The bash script is sourced by a real bash
 * and its function called with COMP_WORDS/COMP_CWORD as bash's completion would.
 */
const config = inject('fleetConfigFile');
const BIN = fileURLToPath(new URL('../../bin/tenantctl', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'tenantctl-completion-'));
let script: string;
let silent: Server;
let hungConfig: string;

beforeAll(async () => {
  script = join(tmp, 'tenantctl.bash');
  const r = await cli(['completion', 'bash']);
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(script, r.stdout);
  // A catalog that accepts connections and never answers.
  silent = createServer(() => {});
  await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
  const port = (silent.address() as AddressInfo).port;
  hungConfig = join(tmp, 'hung.yaml');
  const text = readFileSync(config, 'utf8');
  const us1 = /us1:\s*\n\s*url: postgres:\/\/[^\n]*127\.0\.0\.1:(\d+)/.exec(text)![1];
  writeFileSync(hungConfig, text.replaceAll(`127.0.0.1:${us1}/`, `127.0.0.1:${port}/`));
});
afterAll(() => {
  silent?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Source the script in bash, complete each line (the last word is the one being typed); words and ms per line. */
function complete(lines: string[][], env: NodeJS.ProcessEnv = {}, bin = BIN): Promise<{ words: string[]; ms: number }[]> {
  const calls = lines
    .map((words) => {
      const quoted = [bin, ...words].map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
      return `COMP_WORDS=(${quoted}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=(); t0=$EPOCHREALTIME; _tenantctl; t1=$EPOCHREALTIME
printf '%s\\t%s\\n' "$(( (\${t1/./} - \${t0/./}) / 1000 ))" "\${COMPREPLY[*]}"`;
    })
    .join('\n');
  return new Promise((resolve, reject) => {
    const bash = spawn('bash', ['--norc', '--noprofile', '-c', `source '${script}'\n${calls}`], {
      env: { ...process.env, TENANTCTL_CONFIG: undefined, ...env },
      cwd: tmp,
    });
    let out = '';
    let err = '';
    bash.stdout.on('data', (d) => (out += d));
    bash.stderr.on('data', (d) => (err += d));
    bash.on('error', reject);
    bash.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bash exit ${code}: ${err}`));
      resolve(
        out
          .trimEnd()
          .split('\n')
          .map((l) => {
            const [ms, words] = l.split('\t');
            return { ms: Number(ms), words: words ? words.split(' ') : [] };
          }),
      );
    });
  });
}

describe('tenantctl completion bash (sourced in bash)', () => {
  it('completes commands, subcommands, flags and fixed values with no config, starting no tenantctl', async () => {
    const [top, ten, sub, flags, model, failOn, shell, file] = await complete([
      [''],
      ['ten'],
      ['tenant', ''],
      ['tenant', 'create', '--'],
      ['migrate', 'up', '--json', '--model', ''],
      ['audit', '--fail-on', 'h'],
      ['completion', ''],
      ['backup', 'create', '--metrics-file', 'tenantctl.b'],
    ]);
    expect(top.words).toEqual(expect.arrayContaining(['dev', 'tenant', 'migrate', 'backup', 'restore', 'move', 'audit', 'completion']));
    expect(top.words).not.toContain('__complete');
    expect(ten.words).toEqual(['tenant']);
    expect(sub.words).toEqual(expect.arrayContaining(['create', 'list', 'show', 'suspend', 'resume', 'delete']));
    expect(flags.words).toEqual(expect.arrayContaining(['--model', '--tier', '--region', '--shard', '--config', '--json']));
    expect(model.words).toEqual(['pool', 'schema', 'database']);
    expect(failOn.words).toEqual(['high']);
    expect(shell.words).toEqual(['bash', 'zsh', 'fish']);
    expect(file.words).toEqual(['tenantctl.bash']);
    // The static part starts no tenantctl at all (the issue's "under 100 ms" is bench/help-startup.sh's
    // to measure, not a timed assertion here): the same lines typed with a "tenantctl" that records
    // each start complete the same words and record none.
    const marker = join(tmp, 'started');
    const spy = join(tmp, 'tenantctl-spy');
    writeFileSync(spy, `#!/bin/sh\necho "$@" >> '${marker}'\nexec '${BIN}' "$@"\n`, { mode: 0o755 });
    const statics = [top, ten, sub, flags, model, failOn, shell];
    const again = await complete(
      [
        [''],
        ['ten'],
        ['tenant', ''],
        ['tenant', 'create', '--'],
        ['migrate', 'up', '--json', '--model', ''],
        ['audit', '--fail-on', 'h'],
        ['completion', ''],
      ],
      {},
      spy,
    );
    expect(again.map((r) => r.words)).toEqual(statics.map((r) => r.words));
    expect(existsSync(marker)).toBe(false);
  });

  it('completes slugs from the catalog and shards, regions and tiers from the config (--config on the line)', async () => {
    // The catalog's answer is awaited longer than a Tab would (500 ms): this machine runs the suite on 2 cores.
    const slow = { TENANTCTL_COMPLETE_TIMEOUT_MS: '10000' };
    expect((await cli(['tenant', 'create', 'cmp-alpha', '--tier', 'free'], { config })).code).toBe(0);
    const [slugs, show, shards, regions, tiers, afterFlag] = await complete(
      [
        ['--config', config, 'tenant', 'show', 'cmp-'],
        ['tenant', 'show', 'cmp-'],
        ['--config', config, 'move', 'x', '--to-shard', ''],
        ['--config', config, 'tenant', 'create', 'new', '--region', ''],
        ['--config', config, 'tenant', 'list', '--tier', ''],
        ['--config', config, 'backup', 'create', '--json', 'cmp-alpha', 'cmp-a'],
      ],
      slow,
    );
    expect(slugs.words).toContain('cmp-alpha');
    expect(slugs.words.every((w) => w.startsWith('cmp-'))).toBe(true);
    expect(show.words).toEqual([]); // no --config, none in the folder: static part only
    expect(shards.words).toEqual(['us1', 'us2', 'eu1']);
    expect(regions.words).toEqual(['us-east', 'eu-west']);
    expect(tiers.words).toEqual(['free', 'standard', 'enterprise']);
    expect(afterFlag.words).toContain('cmp-alpha'); // variadic: every later argument is a slug
    // The environment's config is used the same way.
    const [viaEnv] = await complete([['resolve', 'cmp-al']], { ...slow, TENANTCTL_CONFIG: config });
    expect(viaEnv.words).toEqual(['cmp-alpha']);
  });

  it('a catalog that never answers: no slugs, no error, and the Tab comes back', async () => {
    const [hung] = await complete([['--config', hungConfig, 'tenant', 'show', '']]);
    expect(hung.words).toEqual([]);
    // The completion's connect gives up after 500 ms; tenantctl's own connect timeout is 5 s, so
    // 5 s tells the two apart however long node takes to start on a busy machine (1-2 s here).
    expect(hung.ms).toBeLessThan(5000);
    const r = await cli(['__complete', 'slugs'], { config: hungConfig });
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });
});

describe('__complete', () => {
  it('prints one word a line, and nothing (exit 0) without a config or for an unknown kind', async () => {
    expect((await cli(['__complete', 'regions'], { config })).stdout).toBe('us-east\neu-west\n');
    expect(await cli(['__complete', 'slugs'], { env: { TENANTCTL_CONFIG: join(tmp, 'none.yaml') } })).toMatchObject({
      code: 0,
      stdout: '',
      stderr: '',
    });
    expect(await cli(['__complete', 'nonsense'], { config })).toMatchObject({ code: 0, stdout: '' });
    expect((await cli(['--help'])).stdout).not.toContain('__complete');
  });
});

describe('completion zsh and fish', () => {
  it('carry the same commands and flags and ask __complete for dynamic values', async () => {
    const zsh = await cli(['completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toMatch(/^#compdef tenantctl\n/);
    expect(zsh.stdout).toContain('bashcompinit');
    expect(zsh.stdout).toContain("'tenant') _tenantctl_r='create list show");
    const fish = await cli(['completion', 'fish']);
    expect(fish.code).toBe(0);
    expect(fish.stdout).toContain(`complete -c tenantctl -f -n '__tenantctl_at \\'tenant\\'' -a 'create'`);
    expect(fish.stdout).toContain(`-l metrics-file -r -F`);
    expect(fish.stdout).toContain('(__tenantctl_dynamic slugs)');
    const bad = await cli(['completion', 'powershell']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bash, zsh, fish/);
  });
});

/** Whether a shell is installed (zsh and fish are not in the CI image; their tests skip there, saying so). */
function has(shell: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
}

/** A folder whose `tenantctl` is this build: the scripts run `tenantctl __complete` by the name typed. */
function pathWithTenantctl(): string {
  const bin = join(tmp, 'bin');
  mkdirSync(bin, { recursive: true });
  if (!existsSync(join(bin, 'tenantctl'))) symlinkSync(BIN, join(bin, 'tenantctl'));
  return `${bin}:${process.env.PATH}`;
}

async function scriptFor(shell: 'zsh' | 'fish'): Promise<string> {
  const r = await cli(['completion', shell]);
  expect(r.code, r.stderr).toBe(0);
  const file = join(tmp, `tenantctl.${shell}`);
  writeFileSync(file, r.stdout);
  return file;
}

/**
 * Type `line` and two Tabs in an interactive zsh (driven through zsh's own pseudo-terminal module,
 * zpty) that ran compinit and sourced the script; what the terminal showed, escapes removed, once
 * `want` has appeared and the listing is drawn (or after 30 s).
 */
function zshTab(script: string, line: string, want: string): string {
  const driver = `zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; autoload -U compinit && compinit -u; source "$SCRIPT"'
zpty -w -n z "$LINE"$'\\t\\t'
all=''
end=$((SECONDS + 30))
quiet=0
# Until WANT has appeared and the terminal then stayed quiet for a second (the whole listing drawn).
# WANT is looked for with the escapes removed, as the caller does: zsh draws the space after a
# completed word in bold, so the raw output never holds "word " and the loop used to run out its 30 s.
setopt extendedglob
while (( SECONDS < end && quiet < 5 )); do
  if zpty -r -t z out; then all+=$out; quiet=0; else sleep 0.2; [[ \${all//$'\\e'\\[[0-9;?]#[a-zA-Z]/} == *$WANT* ]] && (( quiet++ )); fi
done
zpty -d z
print -r -- "$all"`;
  const r = spawnSync('zsh', ['-f', '-c', driver], {
    env: {
      ...process.env,
      SCRIPT: script,
      LINE: line,
      WANT: want,
      PATH: pathWithTenantctl(),
      TENANTCTL_CONFIG: '',
      TENANTCTL_COMPLETE_TIMEOUT_MS: '10000',
    },
    encoding: 'utf8',
    timeout: 60_000,
    cwd: tmp,
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '');
}

/** What fish itself completes for `line` (`complete -C`) with the script sourced: the candidate words. */
function fishComplete(script: string, line: string): string[] {
  const r = spawnSync('fish', ['--no-config', '-c', `source $argv[1]; complete -C $argv[2]`, script, line], {
    env: { ...process.env, PATH: pathWithTenantctl(), TENANTCTL_CONFIG: '', TENANTCTL_COMPLETE_TIMEOUT_MS: '10000' },
    encoding: 'utf8',
    timeout: 60_000,
    cwd: tmp,
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[0]);
}

const COMMANDS = ['audit', 'backup', 'catalog', 'completion', 'dev', 'migrate', 'move', 'restore', 'tenant', 'usage'];

describe('completion zsh and fish, in the shells themselves', () => {
  // zsh and fish are not installed in the CI image (no shells are installed for the tests):
  // there these skip, and only the script texts above are checked.
  it.skipIf(!has('zsh'))('zsh: the script passes zsh -n; Tab completes the commands, and the catalog slugs', async () => {
    const script = await scriptFor('zsh');
    const n = spawnSync('zsh', ['-n', script], { encoding: 'utf8' });
    expect(n.status, n.stderr).toBe(0);
    const top = zshTab(script, 'tenantctl ', 'completion');
    for (const c of COMMANDS) expect(top).toContain(c);
    expect((await cli(['tenant', 'create', 'cmp-zsh', '--tier', 'free'], { config })).code).toBe(0);
    expect(zshTab(script, `tenantctl --config ${config} tenant show cmp-z`, 'cmp-zsh ')).toContain('cmp-zsh ');
  });

  it.skipIf(!has('fish'))('fish: the script passes fish -n; complete -C gives the commands, and the catalog slugs', async () => {
    const script = await scriptFor('fish');
    const n = spawnSync('fish', ['-n', script], { encoding: 'utf8' });
    expect(n.status, n.stderr).toBe(0);
    expect(fishComplete(script, 'tenantctl ')).toEqual(expect.arrayContaining(COMMANDS));
    expect(fishComplete(script, 'tenantctl tenant ')).toEqual(expect.arrayContaining(['create', 'list', 'show', 'suspend']));
    expect((await cli(['tenant', 'create', 'cmp-fish', '--tier', 'free'], { config })).code).toBe(0);
    expect(fishComplete(script, `tenantctl --config ${config} tenant show cmp-f`)).toContain('cmp-fish');
    expect(fishComplete(script, 'tenantctl tenant show cmp-f')).toEqual([]); // no config: the static part only
  });
});

describe('man page', () => {
  it('is generated by the build from the program, installed through package.json, and equals help --man', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { man: string };
    const file = readFileSync(fileURLToPath(new URL(`../../${pkg.man}`, import.meta.url)), 'utf8');
    const r = await cli(['help', '--man']);
    expect(r.code).toBe(0);
    expect(file).toBe(r.stdout);
    expect(file).toMatch(/^\.TH TENANTCTL 1 /);
    for (const c of ['tenant create', 'backup prune', 'migrate up', 'move complete', 'completion'])
      expect(file).toContain(`.SS "tenantctl ${c.replace(/-/g, '\\-')} `);
    expect(file).toContain('\\-\\-metrics\\-file <file>');
    expect(file).toContain('tenantctl tenant create acme \\-\\-tier standard'); // the examples
  });
});
