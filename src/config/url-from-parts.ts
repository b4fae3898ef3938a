/**
 * The one place a connection given as parts (`host`, `port`, `user`, `password`, `database`)
 * becomes the URL the rest of tenantctl uses. Each part is percent-encoded, so a password such as
 * `S3cr@t:/%x` reaches PostgreSQL unchanged.
 *
 * @example
 *   urlFromParts({ host: 'db', user: 'app', password: 'S3cr@t:/%x' })
 *   // 'postgres://app:S3cr%40t%3A%2F%25x@db:5432/postgres'
 */
export interface ConnectionParts {
  host: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
}

export function urlFromParts(p: ConnectionParts): string {
  const bare = p.host.replace(/^\[(.*)\]$/, '$1');
  const host = bare.includes(':') ? `[${bare}]` : bare;
  const user = encodeURIComponent(p.user ?? '');
  const userinfo = p.password ? `${user}:${encodeURIComponent(p.password)}@` : user ? `${user}@` : '';
  return `postgres://${userinfo}${host}:${p.port ?? 5432}/${encodeURIComponent(p.database ?? 'postgres')}`;
}
