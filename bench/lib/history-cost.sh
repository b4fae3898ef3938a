#!/usr/bin/env bash
# What a `migrate up` run of 5,000 targets costs the catalog's history tables, with R runs kept:
# the run's insert of its target rows, then its outcomes in five statements of 1,000 (the catalog
# writer's batches), twice, each after a checkpoint. In a scratch catalog that this checkout's
# tenantctl creates and migrates on the kept fleet's shard (so the trigger and tables are the
# shipped ones), as the fleet's superuser URL (psql).
#
#   bash bench/lib/history-cost.sh DIR R last     # catalog migration 0010: migrate_target_last, kept by its trigger
#   bash bench/lib/history-cost.sh DIR R index    # before it: the history's (target, run_id desc) index, no trigger
#   bash bench/lib/history-cost.sh DIR R events   # 5,000 events (one per tenant) into the event log with R runs of them
#
# DIR is a kept bench fleet (BENCH_KEEP=1 bash bench/migrate-schemas.sh), started (dev up).
set -euo pipefail
dir=$1 runs=$2 mode=$3
here="$(cd "$(dirname "$0")/../.." && pwd)"
url=$(awk '/url: postgres/ { print $2; exit }' "$dir/tenants.config.yaml")
scratch=history_cost
conf=$(mktemp --suffix .yaml)
trap 'rm -f "$conf"; psql "$url" -qX -c "drop database if exists $scratch" >/dev/null 2>&1' EXIT
sed "s/^  database: .*/  database: $scratch/" "$dir/tenants.config.yaml" >"$conf"
psql "$url" -qX -c "drop database if exists $scratch" >/dev/null 2>&1
node "$here/bin/tenantctl" --config "$conf" tenant list --json >/dev/null # creates and migrates the catalog
cat_url="${url%/postgres}/$scratch"
sq() { psql "$cat_url" -qX -v ON_ERROR_STOP=1 "$@"; }

if [ "$mode" = events ]; then
  sq -c "insert into events (actor, command, tenant_slug, action, result, details)
    select 'bench', 'migrate up', 's' || g, 'migration applied', 'ok', jsonb_build_object('run', r, 'applied', '[\"0004_x\"]'::jsonb)
      from generate_series(1, $runs) r, generate_series(1, 5000) g order by r, g" >/dev/null
  sq -c 'vacuum analyze events' >/dev/null
  for i in 1 2; do
    sq -c checkpoint >/dev/null
    sq <<SQL | awk -v r="$runs" -v i="$i" '/^Time:/ { printf "events R=%s run %s: insert %.1f ms\n", r, i, $2 }'
\\timing on
insert into events (actor, command, tenant_slug, action, result, details)
  select 'bench', 'migrate up', 's' || g, 'migration applied', 'ok', jsonb_build_object('run', 0, 'applied', '["0004_x"]'::jsonb)
    from generate_series(1, 5000) g;
SQL
  done
  exit 0
fi

if [ "$mode" = index ]; then
  sq -c 'drop trigger migrate_target_last_on_insert on migrate_targets' \
    -c 'drop trigger migrate_target_last_on_update on migrate_targets' \
    -c 'create index migrate_targets_target_idx on migrate_targets (target, run_id desc)' >/dev/null
fi
# R runs of history (their operations rows too), each target succeeded with something applied.
sq -c "insert into operations (kind, status, holder) select 'migrate', 'succeeded', 'bench' from generate_series(1, $runs + 2)" \
  -c "insert into migrate_targets (run_id, target, position, model, shard, database_name, schema_name, tenants, status, applied, duration_ms)
        select r, 'us1/tenant_schemas/t_s' || g, g, 'schema', 'us1', 'tenant_schemas', 't_s' || g, array['s' || g], 'succeeded', '{m}', 3
          from generate_series(1, $runs) r, generate_series(1, 5000) g order by r, g" >/dev/null
sq -c 'vacuum analyze' >/dev/null
for i in 1 2; do
  run=$((runs + i))
  sq -c checkpoint >/dev/null
  sq <<SQL | awk -v m="$mode" -v r="$runs" -v i="$i" '/^Time:/ { t[++n] = $2 } END { u = 0; for (k = 2; k <= n; k++) u += t[k]; printf "%s R=%s run %s: insert %.1f ms, outcomes %.1f ms, total %.1f ms\n", m, r, i, t[1], u, t[1] + u }'
\\timing on
insert into migrate_targets (run_id, target, position, model, shard, database_name, schema_name, tenants, status)
  select $run, 'us1/tenant_schemas/t_s' || g, g, 'schema', 'us1', 'tenant_schemas', 't_s' || g, array['s' || g], 'pending'
    from generate_series(1, 5000) g;
update migrate_targets set status = 'succeeded', applied = '{m2}', finished_at = now(), duration_ms = 4 where run_id = $run and position between 1 and 1000;
update migrate_targets set status = 'succeeded', applied = '{m2}', finished_at = now(), duration_ms = 4 where run_id = $run and position between 1001 and 2000;
update migrate_targets set status = 'succeeded', applied = '{m2}', finished_at = now(), duration_ms = 4 where run_id = $run and position between 2001 and 3000;
update migrate_targets set status = 'succeeded', applied = '{m2}', finished_at = now(), duration_ms = 4 where run_id = $run and position between 3001 and 4000;
update migrate_targets set status = 'succeeded', applied = '{m2}', finished_at = now(), duration_ms = 4 where run_id = $run and position between 4001 and 5000;
SQL
done
