#!/usr/bin/env bash
# The catalog's own cost at 1,000 and at 100,000 tenants (issue 22, item 2).
#
#   bash bench/catalog-scale.sh        # sizes BENCH_CATALOG_SIZES (default "1000 100000"), BENCH_RUNS (default 5) per command
#
# One real schema tenant (cseed) lives on the one shard; the other catalog rows point at
# placements that need not exist (catalog rows only, with an event each and some operations
# history), inserted with SQL. At each size, timed with process start (median of BENCH_RUNS):
#   resolve cseed, tenant show cseed, migrate up --tenant cseed --dry-run (the plan),
#   migrate status --tenant cseed, tenant list --json (every row; its peak RSS too)
# and the EXPLAIN of the catalog queries behind them at the largest size.
# Target: each per-tenant command at the largest size within 1.5x of the smallest.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"

SIZES=(${BENCH_CATALOG_SIZES:-1000 100000})
RUNS=${BENCH_RUNS:-5}
bench_fleet_up 1
CATALOG_DB=tenantctl_catalog
bench_log "catalog-scale: one real tenant, then catalog rows up to ${SIZES[*]}"
bench_tctl --quiet tenant create cseed --model schema --shard us1 >/dev/null
cat_psql() { bench_psql "$BENCH_PORT_US1" "$CATALOG_DB" "$@"; }

# Catalog rows up to N tenants (rows only: placements that do not exist), one event each, one
# finished operation per ten tenants and a migrate run over them, as a fleet's history would have.
grow_to() {
  local n=$1
  cat_psql <<SQL
insert into tenants (slug, key, name, tier, model, region, shard, database_name, schema_name, status, schema_version)
select 'c' || lpad(i::text, 6, '0'), md5('k' || i)::uuid::text, 'Tenant ' || i, 'standard', 'schema', 'us-east', 'us1',
       'tenant_schemas', 't_c' || lpad(i::text, 6, '0'), 'active', null
  from generate_series(1, $n - 1) i
on conflict (slug) do nothing;
insert into events (actor, command, tenant_slug, action, result)
select 'bench', 'tenant create', t.slug, 'provisioned', 'ok' from tenants t
 where t.slug <> 'cseed' and not exists (select 1 from events e where e.tenant_slug = t.slug);
insert into operations (kind, status, tenant_slug, holder, args, finished_at)
select 'backup', 'succeeded', t.slug, 'bench', '{}', now() from tenants t
 where t.slug <> 'cseed' and right(t.slug, 1) = '0' and not exists (select 1 from operations o where o.tenant_slug = t.slug);
-- One migrate run over the new rows (their targets' last run, as migrate status reads it).
insert into operations (kind, status, holder, args, finished_at) values ('migrate', 'succeeded', 'bench', '{}', now());
insert into migrate_targets (run_id, target, position, model, shard, database_name, schema_name, tenants, status, applied,
                             finished_at, duration_ms)
select currval(pg_get_serial_sequence('operations', 'id')), 'us1/tenant_schemas/' || t.schema_name,
       row_number() over (order by t.slug), 'schema', 'us1', 'tenant_schemas', t.schema_name, array[t.slug], 'succeeded',
       '{0001_x}', now(), 5
  from tenants t
 where t.slug <> 'cseed'
   and not exists (select 1 from migrate_target_last l where l.target = 'us1/tenant_schemas/' || t.schema_name);
-- Settled before the timings: the new rows' visibility set, and no autovacuum of them while the queries are timed.
vacuum analyze tenants; vacuum analyze events; vacuum analyze operations; vacuum analyze migrate_targets;
vacuum analyze migrate_target_last;
SQL
}

# The catalog queries behind those commands (resolve and tenant show: getTenant, recentEvents; the
# --tenant plan: selectTenants; tenant list: one keyset page; migrate status: lastRunByTarget;
# move status: latestMove), each under EXPLAIN OPTS.
explain_queries() {
  local o=$1
  cat_psql <<SQL
\\echo '-- getTenant (resolve, tenant show) and selectTenants --tenant (the plan of migrate up/status)'
explain $o select * from tenants where slug = 'cseed';
explain $o select * from tenants where slug in ('cseed') order by slug;
\\echo '-- tenant show: recent events'
explain $o select * from events where tenant_slug = 'cseed' order by id desc limit 10;
\\echo '-- tenant list --json: one page of 1,000 (a full page at every size, so the sizes compare)'
explain $o select * from tenants where slug >= 'c' order by slug limit 1000;
\\echo '-- migrate status: last finished run of the selected targets'
explain $o select target, run_id, status, error, finished_at from migrate_target_last
 where target = any('{us1/tenant_schemas/t_c000500}'::text[]);
\\echo '-- move status: latest move of the tenant'
explain $o select * from operations where kind = 'move' and tenant_slug = 'cseed' order by id desc limit 1;
SQL
}

# Server-side execution time (ms) of each of those queries, summed over 20 runs: the total in
# SQL_TOTAL, each query's (in explain_queries' order) in SQL_EACH.
QUERY_NAMES=(getTenant selectTenants recentEvents tenantPage lastRunByTarget latestMove)
sql_ms() {
  local i
  explain_queries '(analyze, timing off)' >/dev/null # warm-up: pages read into shared buffers once, not in round 1
  SQL_EACH=$(for ((i = 0; i < 20; i++)); do explain_queries '(analyze, timing off)' | awk '/Execution Time/ { print ++n, $3 }'; done |
    awk '{ s[$1] += $2 } END { for (k = 1; k in s; k++) printf "%s%.3f", (k > 1 ? " " : ""), s[k] }')
  SQL_TOTAL=$(awk '{ for (i = 1; i <= NF; i++) t += $i; printf "%.3f", t }' <<<"$SQL_EACH")
}

declare -A MS
for n in "${SIZES[@]}"; do
  grow_to "$n"
  rows=$(cat_psql -Atc 'select count(*) from tenants')
  bench_log "catalog-scale: $rows catalog rows"
  for cmd in 'resolve cseed' 'tenant show cseed' 'migrate up --tenant cseed --dry-run' 'migrate status --tenant cseed'; do
    bench_measure "$cmd @$rows" "$RUNS" 1 "node $BENCH_REPO/bin/tenantctl --config $BENCH_CONFIG --json $cmd"
    MS["$cmd/$n"]=$BENCH_MEDIAN_MS
  done
  bench_measure "tenant list --json @$rows" "$RUNS" 1 "node $BENCH_REPO/bin/tenantctl --config $BENCH_CONFIG --json tenant list"
  MS["tenant list --json/$n"]=$BENCH_MEDIAN_MS
  rss=$(/usr/bin/time -f %M node "$BENCH_REPO/bin/tenantctl" --config "$BENCH_CONFIG" --json tenant list 2>&1 >/dev/null | tail -1)
  listed=$(node "$BENCH_REPO/bin/tenantctl" --config "$BENCH_CONFIG" --json tenant list | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tenants.length))')
  MS["rss/$n"]=$rss
  sql_ms
  MS["sql/$n"]=$SQL_TOTAL
  read -r -a each <<<"$SQL_EACH"
  for i in "${!QUERY_NAMES[@]}"; do MS["q${i}/$n"]=${each[$i]}; done
  bench_log "  catalog queries of those commands, server-side, 20 rounds: ${MS["sql/$n"]} ms (${QUERY_NAMES[*]}: $SQL_EACH)"
  bench_log "  tenant list --json @$rows: $listed tenants, peak RSS ${rss} KiB"
done

last=${SIZES[-1]}
bench_log "catalog-scale: EXPLAIN at $(cat_psql -Atc 'select count(*) from tenants') rows"
explain_queries '(costs off)' >&2

echo "== catalog-scale ($(date -u +%Y-%m-%d), $(nproc) cores, node $(node --version)): median ms of $RUNS runs, process start included"
printf '%-36s' command
for n in "${SIZES[@]}"; do printf '%12s' "$n"; done
printf '%10s\n' ratio
for cmd in 'resolve cseed' 'tenant show cseed' 'migrate up --tenant cseed --dry-run' 'migrate status --tenant cseed' 'tenant list --json'; do
  printf '%-36s' "$cmd"
  for n in "${SIZES[@]}"; do printf '%12s' "${MS["$cmd/$n"]}"; done
  printf '%10s\n' "$(bench_ratio "${MS["$cmd/$last"]}" "${MS["$cmd/${SIZES[0]}"]}")"
done
printf '%-36s' 'catalog queries x20, server ms'
for n in "${SIZES[@]}"; do printf '%12s' "${MS["sql/$n"]}"; done
printf '%10s\n' "$(bench_ratio "${MS["sql/$last"]}" "${MS["sql/${SIZES[0]}"]}")"
for i in "${!QUERY_NAMES[@]}"; do
  printf '%-36s' "  ${QUERY_NAMES[$i]} x20, server ms"
  for n in "${SIZES[@]}"; do printf '%12s' "${MS["q${i}/$n"]}"; done
  printf '%10s\n' "$(bench_ratio "${MS["q${i}/$last"]}" "${MS["q${i}/${SIZES[0]}"]}")"
done
printf '%-36s' 'tenant list --json peak RSS (KiB)'
for n in "${SIZES[@]}"; do printf '%12s' "${MS["rss/$n"]}"; done
printf '%10s\n' "$(bench_ratio "${MS["rss/$last"]}" "${MS["rss/${SIZES[0]}"]}")"
echo "catalog-scale: the per-tenant catalog queries at ${last} rows take $(bench_ratio "${MS["sql/$last"]}" "${MS["sql/${SIZES[0]}"]}")x their time at ${SIZES[0]} (server-side; wall times above include process start and this machine's load)"
