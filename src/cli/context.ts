import type { Config } from '../config/types.js';
import { createOutput, type Output } from '../report/output.js';
import type { CatalogDb } from '../catalog/open.js';
import type { Fleet } from '../fleet/fleet.js';

/** Global flags every command sees. */
export interface GlobalOptions {
  config?: string;
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
  verbose?: boolean;
}

/**
 * What a command runs with: the config, the output, and the catalog and fleet opened lazily
 * (so `config show` or `dev up` never touch a database they do not need) and closed at the end.
 */
export class CommandContext {
  readonly out: Output;
  readonly command: string;
  private cfg?: Config;
  private db?: CatalogDb;
  private fl?: Fleet;

  constructor(
    readonly opts: GlobalOptions,
    command: string,
  ) {
    this.command = command;
    this.out = createOutput({ json: opts.json, quiet: opts.quiet, color: opts.color });
  }

  private load?: typeof import('../config/load.js').loadConfig;

  /** Load the config module (zod, yaml) only when a command runs, never for --help. */
  async prepare(): Promise<void> {
    this.load = (await import('../config/load.js')).loadConfig;
  }

  get config(): Config {
    if (!this.load) throw new Error('CommandContext.prepare() was not awaited');
    this.cfg ??= this.load({ file: this.opts.config });
    return this.cfg;
  }

  async catalog(): Promise<CatalogDb> {
    if (!this.db) {
      const { openCatalog } = await import('../catalog/open.js');
      this.db = await openCatalog(this.config, {
        onCreate: (place) =>
          this.out.info(
            `note: created ${place}, empty: this fleet's first command. If the fleet has tenants already, catalog.url (or catalog.shard and catalog.database) points elsewhere: see tenantctl config show`,
          ),
      });
    }
    return this.db;
  }

  async fleet(): Promise<Fleet> {
    if (!this.fl) {
      const { Fleet } = await import('../fleet/fleet.js');
      this.fl = new Fleet(this.config);
    }
    return this.fl;
  }

  async close(): Promise<void> {
    await Promise.all([this.fl?.close(), this.db?.destroy()]);
  }
}

/** Off a TTY, or with --json, nobody can answer a prompt. */
export function canPrompt(ctx: CommandContext): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY && !ctx.opts.json);
}
