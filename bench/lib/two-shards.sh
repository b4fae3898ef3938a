# Helpers of the move benches (move.sh, move-build-first.sh, move-vs-pgcopydb.sh). Source it after
# common.sh; do not run it.

# bench_two_shards: a temp folder the postgres OS user can reach (removed on exit) and the config
# of two embedded shards (us1, eu1) connected as the least-privileged shard role `tenantctl`. Sets
# BENCH_DIR, BENCH_CONFIG, BENCH_PASSWORD, BENCH_PORT_US1, BENCH_PORT_EU1. The caller runs dev up.
bench_two_shards() {
  bench_require_built
  BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tenantctl-bench-XXXXXX")"
  chmod 0755 "$BENCH_DIR"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  eval "$(node bench/lib/fleet-config.mjs "$BENCH_DIR" 2)"
  sed -i 's#postgres://postgres:#postgres://tenantctl:#' "$BENCH_CONFIG"
}

# psql as the shard role: role_psql PORT DB [psql args...]
role_psql() { local port=$1 db=$2; shift 2; PGPASSWORD="$BENCH_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U tenantctl -d "$db" "$@"; }

# seed_schema_tenant PORT SLUG ROWS: ROWS rows over the schema tenant's 5 tables (users, projects,
# tasks 55%, comments 44%), then vacuum analyze. Prints the tenant's key.
seed_schema_tenant() {
  local port=$1 slug=$2 n=$3 k
  k=$(bench_tctl --json tenant show "$slug" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tenant.key))')
  local users=$((n / 100 + 1)) tasks=$((n * 55 / 100)) comments=$((n * 44 / 100))
  role_psql "$port" tenant_schemas <<SQL
set search_path = t_${slug//-/_};
insert into workspaces (id, name) values ('$k', 'bench');
insert into users (tenant_id, id, email, display_name)
  select '$k', md5('$k' || i)::uuid, 'user' || i || '@example.com', 'User number ' || i from generate_series(1, $users) i;
insert into projects (tenant_id, id, name, owner_id)
  select '$k', md5('p$k' || i)::uuid, 'Project ' || i, md5('$k' || 1)::uuid from generate_series(1, 100) i;
insert into tasks (tenant_id, id, project_id, title, status, due_on)
  select '$k', md5('t$k' || i)::uuid, md5('p$k' || (1 + i % 100))::uuid, 'Task number ' || i || ' with a title', 'todo', date '2026-01-01' + i % 365
    from generate_series(1, $tasks) i;
insert into comments (tenant_id, task_id, author_id, body)
  select '$k', md5('t$k' || (1 + i % $tasks))::uuid, md5('$k' || (1 + i % $users))::uuid, 'A comment of ordinary length, number ' || i
    from generate_series(1, $comments) i;
SQL
  PGOPTIONS='-c client_min_messages=error' role_psql "$port" tenant_schemas -c 'vacuum analyze'
  echo "$k"
}
