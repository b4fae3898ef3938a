#!/usr/bin/env bash
# Issue 22.1: the fleet at scale. Eight small embedded clusters (4 in us-east, 4 in eu-west),
# 10,000 tenants mixed as the shipped tiers place them, a few rows each; then every fan-out,
# per shard and in total.
#
#   bash bench/fleet-scale.sh                          # everything, fleet removed at the end
#   BENCH_KEEP=1 bash bench/fleet-scale.sh             # keep the fleet (running) and its folder
#   BENCH_FLEET_DIR=/tmp/tenantctl-bench-X BENCH_STEPS=audit,list bash bench/fleet-scale.sh
#                                                      # resume on a kept fleet: only these steps
#
# Steps (BENCH_STEPS, comma-separated; default every step not yet done on the fleet, in order):
#   onboard   `tenant create --from-file` of BENCH_TENANTS rows (slug,tier,region; regions
#             alternate), timed. Tiers: free → pool, standard → schema, enterprise → database,
#             70% / 28% / 2% (7,000 / 2,800 / 200 at 10,000): a SaaS fleet is mostly small
#             free or trial accounts sharing a pool, a good share of paying customers with a
#             schema each, and a few enterprise customers with a database each (a database per
#             tenant costs a cluster ~8 MB and a connection per session: 25 a shard here).
#   seed      a workspace and 3 users per tenant (raw SQL per shard, not timed)
#   migrate1  `migrate up` with one new migration of one cheap statement (ADD COLUMN)
#   migrate3  `migrate up` with one new migration of three statements (the migrate-schemas round)
#   idle      `migrate up` with nothing pending (3 runs; each one reported)
#   audit     `audit --json`
#   backup    `backup create --all` (BENCH_BACKUP_ARGS replaces --all, e.g. "--all --tier free")
#   usage     `usage --json`
#   list      `tenant list --json`
# Each timed step runs with --json while bench/lib/conn-sampler.mjs samples pg_stat_activity on
# every cluster (100 ms); bench/lib/fleet-report.mjs prints per shard the items, first start and
# last finish (from the report rows' startedAt/finishedAt), busy share of that window, and peak
# connections against maxConnections (10), and checks the fleet against the global bound
# (BENCH_CONCURRENCY, default the config's 8). The summary lines go to $DIR/summary.jsonl.
# Clusters are small (shared_buffers 16MB, max_connections 60): 8 of them share this machine.
# Run it under `flock /tmp/bench.lock` when others bench on the same machine.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/migrate-seed.sh"
cd "$BENCH_REPO"

N=${BENCH_TENANTS:-10000}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
ALL_STEPS=(onboard seed migrate1 migrate3 idle audit backup usage list)
bench_require_built

fleet_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n "${SAMPLER:-}" ]] && kill "$SAMPLER" 2>/dev/null
  if [[ -n "${BENCH_KEEP:-}" ]]; then
    bench_log "bench: BENCH_KEEP set: the fleet keeps running in $BENCH_DIR; resume with BENCH_FLEET_DIR=$BENCH_DIR," \
      "stop it with: node bin/tenantctl --config $BENCH_CONFIG dev down"
  elif [[ -n "$BENCH_DIR" && -d "$BENCH_DIR" ]]; then
    bench_tctl --quiet dev down >/dev/null 2>&1 || bench_log "bench: dev down failed; clusters may still run from $BENCH_DIR/clusters"
    rm -rf "$BENCH_DIR"
  fi
  exit "$rc"
}

# dev up, once more if it fails (idempotent; a pgBackRest stanza-create can time out on a busy machine).
dev_up() {
  bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1 || bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1 ||
    { cat "$BENCH_DIR/dev-up.log" >&2; bench_die "dev up failed"; }
}

# A new fleet: eight shards, made small, or the kept one in BENCH_FLEET_DIR (started if stopped).
fleet_up() {
  if [[ -n "${BENCH_FLEET_DIR:-}" ]]; then
    BENCH_DIR=$BENCH_FLEET_DIR
    [[ -f "$BENCH_DIR/fleet.env" ]] || bench_die "$BENCH_DIR/fleet.env not found: not a fleet kept by this script"
    # shellcheck disable=SC1091
    source "$BENCH_DIR/fleet.env"
    trap fleet_cleanup EXIT
    trap 'exit 130' INT TERM
    dev_up
    return
  fi
  BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tenantctl-bench-XXXXXX")"
  chmod 0755 "$BENCH_DIR"
  trap fleet_cleanup EXIT
  trap 'exit 130' INT TERM
  node bench/lib/fleet-config.mjs "$BENCH_DIR" 8 >"$BENCH_DIR/fleet.env"
  # shellcheck disable=SC1091
  source "$BENCH_DIR/fleet.env"
  echo "BENCH_DIR='$BENCH_DIR'" >>"$BENCH_DIR/fleet.env"
  bench_log "bench: starting 8 embedded shards in $BENCH_DIR"
  dev_up
  local var
  for var in $(compgen -v BENCH_PORT_); do
    bench_psql "${!var}" postgres -c "alter system set shared_buffers = '16MB'" -c "alter system set max_connections = 60" \
      -c "alter system set maintenance_work_mem = '16MB'" -c "alter system set max_wal_size = '256MB'" >/dev/null
  done
  # Those settings take effect on a restart.
  bench_tctl --quiet dev down >/dev/null
  dev_up
  bench_migrations_dir
  echo "BENCH_MIGRATIONS='$BENCH_MIGRATIONS'" >>"$BENCH_DIR/fleet.env"
}

fleet_up
W="$BENCH_DIR/work"
mkdir -p "$W"
SUMMARY="$BENCH_DIR/summary.jsonl"
DONE="$BENCH_DIR/steps.done"
touch "$DONE"
if [[ -n "${BENCH_STEPS:-}" ]]; then
  IFS=, read -r -a STEPS <<<"$BENCH_STEPS"
else
  STEPS=()
  for s in "${ALL_STEPS[@]}"; do grep -qx "$s" "$DONE" || STEPS+=("$s"); done
fi
bench_log "fleet-scale: $N tenants, 8 shards, steps: ${STEPS[*]:-none}; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Time one command (process start included) with --json, sampling connections on every shard,
# then print its per-shard table: measure NAME tenantctl-args...
measure() {
  local name=$1 rc=0
  shift
  rm -f "$W/$name.sampler.json" "$W/$name.sampler.json.ready"
  node bench/lib/conn-sampler.mjs "$BENCH_CONFIG" "$W/$name.sampler.json" &
  SAMPLER=$!
  while [[ ! -f "$W/$name.sampler.json.ready" ]]; do sleep 0.05; done
  local t0 t1
  t0=$(date +%s%3N)
  bench_tctl "$@" --json >"$W/$name.json" 2>"$W/$name.err" || rc=$?
  t1=$(date +%s%3N)
  kill "$SAMPLER"
  wait "$SAMPLER" || true
  SAMPLER=""
  if ((rc != 0)); then
    tail -5 "$W/$name.err" >&2
    bench_log "bench: $name exited $rc (report in $W/$name.json)"
  fi
  node bench/lib/fleet-report.mjs "$name" "$W/$name.json" "$W/$name.sampler.json" "$t0" "$t1" "$CONCURRENCY" "$SUMMARY" ||
    bench_log "bench: $name went over a connection bound"
  echo
}

step_onboard() {
  # Every 50 rows: 35 free, 14 standard, 1 enterprise; regions alternate.
  {
    echo 'slug,tier,region'
    local i k tier
    for ((i = 1; i <= N; i++)); do
      k=$((i % 50))
      if ((k == 0)); then tier=enterprise; elif ((k <= 14)); then tier=standard; else tier=free; fi
      printf 'f%05d,%s,%s\n' "$i" "$tier" "$( ((i % 2)) && echo us-east || echo eu-west)"
    done
  } >"$W/tenants.csv"
  measure onboard tenant create --from-file "$W/tenants.csv" --concurrency "$CONCURRENCY"
  bench_psql "$BENCH_PORT_US1" tenantctl_catalog -Atc \
    "select shard || ' ' || model || ' ' || count(*) from tenants where status = 'active' group by shard, model order by shard, model" | paste -sd' ' |
    sed 's/^/  placed (shard model count): /'
}

step_seed() {
  local t0=$EPOCHREALTIME shard port pids=()
  bench_psql "$BENCH_PORT_US1" tenantctl_catalog -AtF, -c \
    "select shard, model, database_name, schema_name, key from tenants where status = 'active'" >"$W/placements.csv"
  for var in $(compgen -v BENCH_PORT_); do
    shard=$(tr '[:upper:]' '[:lower:]' <<<"${var#BENCH_PORT_}")
    port=${!var}
    (
      grep "^$shard,pool," "$W/placements.csv" | cut -d, -f5 >"$W/seed-$shard-pool.txt" || true
      [[ -s "$W/seed-$shard-pool.txt" ]] && bench_psql "$port" tenant_pool <<SQL >/dev/null
create temp table k (key uuid);
\copy k from '$W/seed-$shard-pool.txt'
insert into app.workspaces (id, name) select key, 'w' from k;
insert into app.users (tenant_id, email, display_name) select key, 'u' || g || '@x.io', 'User ' || g from k, generate_series(1, 3) g;
SQL
      grep "^$shard,schema," "$W/placements.csv" | cut -d, -f4,5 >"$W/seed-$shard-schema.txt" || true
      [[ -s "$W/seed-$shard-schema.txt" ]] && bench_psql "$port" tenant_schemas <<SQL >/dev/null
create temp table k (s text, key uuid);
\copy k from '$W/seed-$shard-schema.txt' (format csv)
do \$\$ declare r record; begin
  for r in select * from k loop
    execute format('insert into %I.workspaces (id, name) values (%L, %L)', r.s, r.key, 'w');
    execute format('insert into %I.users (tenant_id, email, display_name) select %L, ''u'' || g || ''@x.io'', ''User '' || g from generate_series(1, 3) g', r.s, r.key);
  end loop;
end \$\$;
SQL
      { grep "^$shard,database," "$W/placements.csv" || true; } | while IFS=, read -r _ _ db schema key; do
        bench_psql "$port" "$db" -c "insert into \"$schema\".workspaces (id, name) values ('$key', 'w')" \
          -c "insert into \"$schema\".users (tenant_id, email, display_name) select '$key', 'u' || g || '@x.io', 'User ' || g from generate_series(1, 3) g" >/dev/null
      done
    ) &
    pids+=($!)
  done
  local p failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  ((failed == 0)) || bench_die "seeding failed"
  bench_log "seed: 1 workspace + 3 users for $(wc -l <"$W/placements.csv") tenants in $(bench_secs "$(bench_elapsed_ms "$t0" "$EPOCHREALTIME")")"
}

# A new migration file (the next number in the fleet's own migrations folder): next_migration STATEMENTS
next_migration() {
  local n tag
  n=$(($(ls "$BENCH_MIGRATIONS"/*.sql | wc -l) + 1))
  tag="fleet$n"
  BENCH_STATEMENTS=$1 bench_round_sql "$tag" >"$BENCH_MIGRATIONS/$(printf '%04d' "$n")_$tag.sql"
}

step_migrate1() { next_migration 1 && measure migrate1 migrate up; }
step_migrate3() { next_migration 3 && measure migrate3 migrate up; }
step_idle() { local r; for r in 1 2 3; do measure "idle$r" migrate up; done; }
step_audit() { measure audit audit --concurrency "$CONCURRENCY" --fail-on critical; }
step_backup() {
  # shellcheck disable=SC2086
  measure backup backup create ${BENCH_BACKUP_ARGS:---all} --concurrency "$CONCURRENCY"
}
step_usage() { measure usage usage --concurrency "$CONCURRENCY"; }
step_list() { measure list tenant list; }

for s in "${STEPS[@]}"; do
  declare -F "step_$s" >/dev/null || bench_die "unknown step \"$s\": one of ${ALL_STEPS[*]}"
  bench_log "== $s ($(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "step_$s"
  grep -qx "$s" "$DONE" || echo "$s" >>"$DONE"
done

echo "== fleet-scale summary ($N tenants, 8 shards, $(nproc) cores)"
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  for (const s of lines) {
    const sh = Object.values(s.shards);
    const peaks = Object.entries(s.shards).map(([n, f]) => `${n} ${f.peak}`).join(", ");
    const spread = s.finishSpreadMs === undefined ? "" : `, shards start within ${(s.startSpreadMs / 1000).toFixed(1)} s and finish within ${(s.finishSpreadMs / 1000).toFixed(1)} s`;
    const inFlight = s.finishSpreadMs === undefined ? "" : `; at most ${s.peakInFlight} items at once (bound ${s.globalBound})`;
    console.log(`fleet-scale ${s.step}: wall ${(s.wallMs / 1000).toFixed(1)} s${spread}; peak connections ${peaks} (max ${sh[0].maxConnections})${inFlight}; ${s.withinBounds ? "within bounds" : "BOUND EXCEEDED"}`);
  }' "$SUMMARY"
