#!/usr/bin/env bash
# A pool tenant moved between two shards, against psql \copy out of the source and into the
# target of the same rows (issue 10).
#
#   bash bench/move.sh                   # a pool tenant of 1,000,000 rows (BENCH_ROWS)
#   BENCH_ROWS=100000 BENCH_RUNS=3 bash bench/move.sh
#
# Two embedded shards (us1 in us-east, eu1 in eu-west), connected as the least-privileged shard
# role `tenantctl`; every psql of the baseline runs as that role too.
# `big` (BENCH_ROWS rows over its 5 tables) is a pool tenant on us1 among 2 others (BENCH_ROWS/4
# each); eu1's pool already holds 2 tenants of BENCH_ROWS/4, so the target is a live shared pool.
#   tenantctl: move big --to-shard eu1 --yes   (preflight, fence, copy, verify both sides, switch)
#   psql:      5 x \copy (select cols from app.t where key = …) to file on us1,
#              then begin; 5 x \copy app.t from file; commit on eu1
# Between runs (untimed): move rollback (tenantctl) / delete of the copied rows (psql).
# Target: tenantctl <= 0.6x of psql. Modes (BENCH_MODES, default "default fast-load"):
#   default    the shard role has `SET ON PARAMETER session_replication_role` (dev up grants it):
#              foreign keys checked once per tenant, no table locks in the live target pool
#   row-by-row the same move with that grant revoked (by the superuser, untimed): the referential
#              triggers check every row
#   fast-load  --fast-load: foreign keys dropped for the load and checked once, holding the
#              target pool's tables locked meanwhile
# A new schema or database target always loads with its indexes, keys and foreign keys built
# once after the load (nobody else can see it before the commit).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/two-shards.sh"
cd "$BENCH_REPO"

N=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
command -v psql >/dev/null || bench_die "needs psql on PATH"

bench_two_shards
bench_log "move: starting an embedded fleet of 2 shards in $BENCH_DIR"
bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1 || { cat "$BENCH_DIR/dev-up.log" >&2; bench_die "dev up failed"; }
US=$BENCH_PORT_US1
EU=$BENCH_PORT_EU1

key_of() { bench_tctl --json tenant show "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tenant.key))'; }

# seed PORT KEY ROWS: ROWS rows over workspaces, users, projects, tasks, comments in the pool.
seed() {
  local port=$1 k=$2 n=$3
  local users=$((n / 100 + 1)) tasks=$((n * 55 / 100)) comments=$((n * 44 / 100))
  role_psql "$port" tenant_pool <<SQL
insert into app.workspaces (id, name) values ('$k', 'bench');
insert into app.users (tenant_id, id, email, display_name)
  select '$k', md5('$k' || i)::uuid, 'user' || i || '@example.com', 'User number ' || i from generate_series(1, $users) i;
insert into app.projects (tenant_id, id, name, owner_id)
  select '$k', md5('p$k' || i)::uuid, 'Project ' || i, md5('$k' || 1)::uuid from generate_series(1, 100) i;
insert into app.tasks (tenant_id, id, project_id, title, status, due_on)
  select '$k', md5('t$k' || i)::uuid, md5('p$k' || (1 + i % 100))::uuid, 'Task number ' || i || ' with a title', 'todo', date '2026-01-01' + i % 365
    from generate_series(1, $tasks) i;
insert into app.comments (tenant_id, task_id, author_id, body)
  select '$k', md5('t$k' || (1 + i % $tasks))::uuid, md5('$k' || (1 + i % $users))::uuid, 'A comment of ordinary length, number ' || i
    from generate_series(1, $comments) i;
SQL
}

bench_log "move: creating big ($N rows) and 2 others on us1, 2 tenants on eu1 ($((N / 4)) rows each)"
bench_tctl --quiet tenant create big --tier free --shard us1 >/dev/null
for o in o1 o2; do bench_tctl --quiet tenant create "$o" --tier free --shard us1 >/dev/null; done
for o in e1 e2; do bench_tctl --quiet tenant create "$o" --tier free --shard eu1 >/dev/null; done
BIG=$(key_of big)
seed "$US" "$BIG" "$N"
for o in o1 o2; do seed "$US" "$(key_of $o)" $((N / 4)); done
for o in e1 e2; do seed "$EU" "$(key_of $o)" $((N / 4)); done
PGOPTIONS='-c client_min_messages=error' role_psql "$US" tenant_pool -c 'vacuum analyze'
PGOPTIONS='-c client_min_messages=error' role_psql "$EU" tenant_pool -c 'vacuum analyze'

TABLES=(workspaces users projects tasks comments)
cols() { role_psql "$US" tenant_pool -At -c "select string_agg(quote_ident(attname), ', ' order by attnum) from pg_attribute where attrelid = 'app.$1'::regclass and attnum > 0 and not attisdropped"; }
keycol() { [[ $1 == workspaces ]] && echo id || echo tenant_id; }

time_ms() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@" >"$BENCH_DIR/last.out" 2>"$BENCH_DIR/last.err" || { cat "$BENCH_DIR/last.err" "$BENCH_DIR/last.out" >&2; bench_die "failed: $*"; }
  t1=$EPOCHREALTIME
  bench_elapsed_ms "$t0" "$t1"
}

RAW="$BENCH_DIR/raw"
mkdir -p "$RAW"
psql_copy() {
  local out="$BENCH_DIR/copy-out.sql" in="$BENCH_DIR/copy-in.sql"
  : >"$out"
  { echo 'begin;'; } >"$in"
  for t in "${TABLES[@]}"; do
    printf '\\copy (select %s from app.%s where %s = %s::uuid) to %s\n' "$(cols $t)" "$t" "$(keycol $t)" "'$BIG'" "'$RAW/$t.copy'" >>"$out"
    printf '\\copy app.%s (%s) from %s\n' "$t" "$(cols $t)" "'$RAW/$t.copy'" >>"$in"
  done
  echo 'commit;' >>"$in"
  role_psql "$US" tenant_pool -f "$out"
  role_psql "$EU" tenant_pool -f "$in"
}
psql_reset() {
  { echo 'begin;'
    for ((i = ${#TABLES[@]} - 1; i >= 0; i--)); do t=${TABLES[$i]}; printf "delete from app.%s where %s = '%s'::uuid;\n" "$t" "$(keycol $t)" "$BIG"; done
    echo 'commit;'; } | role_psql "$EU" tenant_pool >/dev/null
}
# A mode ending in -base runs the build at BENCH_BASE (an older checkout, built) instead: old and
# new interleaved in one fleet, e.g. BENCH_BASE=/tmp/old BENCH_MODES="row-by-row row-by-row-base".
tctl_move() {
  if [[ $2 == *-base ]]; then node "${BENCH_BASE:?BENCH_BASE names the older build}/bin/tenantctl" --config "$BENCH_CONFIG" --json move big --to-shard eu1 --yes $1
  else bench_tctl --json move big --to-shard eu1 --yes $1; fi
}
tctl_reset() { bench_tctl --quiet move rollback big --yes >/dev/null; }

declare -A T B X
MODES=(${BENCH_MODES:-default fast-load})
grant() { for p in "$US" "$EU"; do bench_psql "$p" postgres -c "$1 set on parameter session_replication_role ${2} tenantctl" >/dev/null; done; }
# Interleaved rounds (psql, then each mode, round after round), so a change in the machine's load
# falls on both sides of the ratio alike; the medians are what the summary reports.
for ((i = 0; i < RUNS; i++)); do
  X[psql]+=" $(time_ms psql_copy)"; psql_reset
  for mode in "${MODES[@]}"; do
    flag=""; [[ $mode == fast-load* ]] && flag="--fast-load"
    [[ $mode == row-by-row* ]] && grant revoke from
    X[$mode]+=" $(time_ms tctl_move "$flag" "$mode")"
    cp "$BENCH_DIR/last.out" "$BENCH_DIR/move-$mode-$i.json"
    bench_log "    $mode run $((i + 1)): $(node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(`${d.foreignKeyCheck?.path ?? d.tables?.[0]?.foreignKeys}, phases ms ${d.phases.map((p)=>`${p.phase} ${p.ms}`).join(", ")}`)' "$BENCH_DIR/move-$mode-$i.json")"
    [[ $mode == row-by-row* ]] && grant grant to
    tctl_reset
  done
  bench_log "  round $((i + 1)) of $RUNS: psql ${X[psql]##* } ms; $(for m in "${MODES[@]}"; do printf '%s %s ms; ' "$m" "${X[$m]##* }"; done)load $(cut -d' ' -f1-3 /proc/loadavg)"
done
T[psql]=$(bench_median ${X[psql]}); bench_log "  psql \\copy out + in: median ${T[psql]} ms (${X[psql]# })"
for mode in "${MODES[@]}"; do
  T[$mode]=$(bench_median ${X[$mode]}); bench_log "  tenantctl move ($mode): median ${T[$mode]} ms (${X[$mode]# })"
  B[$mode]=$(node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(`foreign keys ${d.foreignKeyCheck ? `${d.foreignKeyCheck.path} (${d.foreignKeyCheck.why})` : d.tables?.[0]?.foreignKeys}, writes blocked ${d.writeBlockedMs} ms, ${d.rows} rows, phases ms ${JSON.stringify(Object.fromEntries(d.phases.map(p=>[p.phase,p.ms])))}`)' "$BENCH_DIR/move-$mode-0.json")
done
echo
echo "move: pool tenant of $N rows us1 -> eu1 (pools of 2 x $((N / 4)) on each side), medians of $RUNS, $(nproc 2>/dev/null || echo '?') cores, load $(cut -d' ' -f1-3 /proc/loadavg), role tenantctl:"
for mode in "${MODES[@]}"; do
  r=$(bench_ratio "${T[$mode]}" "${T[psql]}"); flagname=""; [[ $mode == fast-load ]] && flagname="--fast-load "; [[ $mode == row-by-row* ]] && flagname="(no grant) "; [[ $mode == *-base ]] && flagname+="[BENCH_BASE] "
  verdict=$(awk -v r="$r" 'BEGIN { print (r <= 0.6) ? "PASS" : "FAIL" }')
  echo "  tenantctl move ${flagname}$(bench_secs "${T[$mode]}") vs psql \\copy out + in $(bench_secs "${T[psql]}"): ${r}x (target <= 0.6x): $verdict"
  echo "    first run: ${B[$mode]}"
done
