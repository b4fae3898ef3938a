#!/usr/bin/env bash
# Peak memory of migrate up over 10,000 targets (schema tenants of one database).
#
#   bash bench/migrate-rss.sh                   # 10000 targets (BENCH_TENANTS)
#
# The targets are made cheaply (raw SQL schemas plus direct catalog rows) and migrations/ holds
# one tiny migration; every measured run is the real CLI under /usr/bin/time:
#   1. migrate up --json (every target migrated, the whole JSON document built and printed)
#   2. migrate up --json with nothing pending
#   3. migrate status --json
# Target (issue 3): peak RSS under 200 MB.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/migrate-seed.sh"
cd "$BENCH_REPO"

N=${BENCH_TENANTS:-10000}
[[ -x /usr/bin/time ]] || bench_die "needs /usr/bin/time (GNU time) for the peak RSS"
bench_fleet_up 1
bench_port
bench_migrations_dir empty
printf 'create table tiny (id integer primary key);\n' >"$BENCH_MIGRATIONS/0001_tiny.sql"
bench_log "migrate-rss: making $N schema tenants"
bench_tctl --quiet tenant list >/dev/null # creates the catalog
bench_psql "$BENCH_PORT" postgres -c 'create database tenant_schemas' >/dev/null
bench_psql "$BENCH_PORT" tenant_schemas -c "do \$\$ begin for i in 1..${N} loop execute format('create schema t_r%s', i); end loop; end \$\$" >/dev/null
bench_psql "$BENCH_PORT" tenantctl_catalog -c "
  insert into tenants (slug, key, name, tier, model, region, shard, database_name, schema_name, status)
  select 'r' || i, gen_random_uuid()::text, 'r' || i, 'standard', 'schema', 'us-east', 'us1', 'tenant_schemas', 't_r' || i, 'active'
    from generate_series(1, ${N}) i" >/dev/null

# bench_rss NAME CMD...: peak RSS (KB) and wall time of one run; output to a file.
bench_rss() {
  local name=$1
  shift
  /usr/bin/time -f '%M %e' -o "$BENCH_DIR/time.txt" "$@" >"$BENCH_DIR/out.json" 2>"$BENCH_DIR/err.txt" || true
  read -r kb secs <"$BENCH_DIR/time.txt"
  printf '%s|%s|%s\n' "$name" "$kb" "$secs"
}

results=()
results+=("$(bench_rss 'migrate up (all pending)' node bin/tenantctl --config "$BENCH_CONFIG" --json migrate up)")
node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1])); if (!d.ok || d.results.length !== +process.argv[2]) { console.error("unexpected document", d.summary); process.exit(1); }' "$BENCH_DIR/out.json" "$N" ||
  bench_die "migrate up did not migrate every target: $(tail -5 "$BENCH_DIR/err.txt")"
results+=("$(bench_rss 'migrate up (nothing pending)' node bin/tenantctl --config "$BENCH_CONFIG" --json migrate up)")
results+=("$(bench_rss 'migrate status' node bin/tenantctl --config "$BENCH_CONFIG" --json migrate status)")

echo
worst=0
for r in "${results[@]}"; do
  IFS='|' read -r name kb secs <<<"$r"
  mb=$(awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }')
  ((mb > worst)) && worst=$mb
  echo "migrate-rss: $N targets, $name: peak RSS ${mb} MB, ${secs} s"
done
verdict=$(awk -v m="$worst" 'BEGIN { print (m < 200) ? "PASS" : "FAIL" }')
echo "migrate-rss: worst peak RSS ${worst} MB (target < 200 MB): $verdict"
