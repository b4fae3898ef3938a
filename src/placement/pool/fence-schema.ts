/** Schema holding the write-fence function, in every pool database and fenced tenant database. */
export const FENCE_SCHEMA = 'tenantctl_fence';

/**
 * tenantctl's one SECURITY DEFINER function (pool/fence.ts: the serving role's writes take the
 * fence lock through it), as a predicate over `pg_proc p join pg_namespace n`: the audit and the
 * pool's side-door check leave it out, and only it: made by the connected role, in tenantctl's
 * schema, which tenants cannot create in.
 */
export const OWN_DEFINER_FUNCTION_SQL = `(n.nspname = '${FENCE_SCHEMA}' and p.proname = 'check_writable' and p.proowner = (select oid from pg_roles where rolname = current_user))`;
