import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  PostgresDriver,
  type DatabaseConnection,
  type Driver,
  type PostgresPool,
  type PostgresPoolClient,
  type TransactionSettings,
} from 'kysely';
import type pg from 'pg';

/**
 * A Kysely instance bound to one connection that tenantctl already holds (and keeps: destroying
 * the instance never closes it). Module migrations get one of these.
 *
 * When `insideTransaction` is set the connection is already in tenantctl's transaction, so a
 * `db.transaction()` in the module becomes a savepoint instead of a BEGIN that would commit
 * tenantctl's transaction early.
 *
 * @example
 *   const db = kyselyOnClient(client, { insideTransaction: true });
 *   await db.schema.alterTable('tasks').addColumn('archived_at', 'timestamptz').execute();
 */
export function kyselyOnClient<DB = any>(client: pg.ClientBase, opts: { insideTransaction: boolean }): Kysely<DB> {
  const poolClient = {
    query: (sql: string, params: readonly unknown[]) => client.query(sql, params as unknown[]),
    // The connection belongs to tenantctl's pool, not to Kysely.
    release: () => undefined,
  } as unknown as PostgresPoolClient;
  const pool: PostgresPool = {
    connect: async () => poolClient,
    end: async () => undefined,
  };
  return new Kysely<DB>({ dialect: new ClientDialect({ pool }, opts.insideTransaction) });
}

const SAVEPOINT = 'tenantctl_module';

class ClientDialect extends PostgresDialect {
  constructor(
    private readonly cfg: ConstructorParameters<typeof PostgresDialect>[0],
    private readonly insideTransaction: boolean,
  ) {
    super(cfg);
  }

  override createDriver(): Driver {
    return this.insideTransaction ? new SavepointDriver(this.cfg) : new PostgresDriver(this.cfg);
  }
}

class SavepointDriver extends PostgresDriver {
  override async beginTransaction(connection: DatabaseConnection, _settings: TransactionSettings): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${SAVEPOINT}`));
  }

  override async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${SAVEPOINT}`));
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${SAVEPOINT}`));
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${SAVEPOINT}`));
  }
}
