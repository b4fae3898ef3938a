#!/usr/bin/env bash
# An online move (move --online: logical replication, writes fenced only for the last catch-up)
# of a pool tenant between two shards under a steady write load (issue 10).
#
#   BENCH_ROWS=100000 bash bench/move-online.sh        # default 100,000 rows
#   BENCH_RUNS=3 BENCH_WRITE_RATE=40 BENCH_BASELINE_REPO=/path/to/built/checkout bash bench/move-online.sh
#
# Two embedded shards (us1 in us-east, eu1 in eu-west) with wal_level = logical, connected as
# the clusters' superuser: PostgreSQL 15 lets only a superuser create a subscription.
# `big` (BENCH_ROWS rows over its 5 tables) is a pool tenant on us1 among 2 others (BENCH_ROWS/4
# each). While it moves, bench/lib/steady-writer.mjs inserts its rows one after another through
# the serving role (as the application would). Printed: the write block tenantctl reports
# (fence on → lifted, target < 2 s), the writer's own view (how long its inserts failed with the
# fence's SQLSTATE 25006, the longest gap between two commits), and the proof that every insert
# committed before the fence is at the target.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"

N=${BENCH_ROWS:-100000}
command -v psql >/dev/null || bench_die "needs psql on PATH"
bench_fleet_up 2
US=$BENCH_PORT_US1
EU=$BENCH_PORT_EU1
APP_PASSWORD=${TENANTCTL_APP_PASSWORD:-app-dev-password}

key_of() { bench_tctl --json tenant show "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tenant.key))'; }

# seed PORT KEY ROWS: ROWS rows over workspaces, users, projects, tasks, comments in the pool.
seed() {
  local port=$1 k=$2 n=$3
  local users=$((n / 100 + 1)) tasks=$((n * 55 / 100)) comments=$((n * 44 / 100))
  bench_psql "$port" tenant_pool <<SQL
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

bench_log "move-online: creating big ($N rows) and 2 others on us1"
bench_tctl --quiet tenant create big --tier free --shard us1 >/dev/null
for o in o1 o2; do bench_tctl --quiet tenant create "$o" --tier free --shard us1 >/dev/null; done
BIG=$(key_of big)
seed "$US" "$BIG" "$N"
for o in o1 o2; do seed "$US" "$(key_of $o)" $((N / 4)); done
bench_psql "$US" tenant_pool -c 'vacuum analyze'

RUNS=${BENCH_RUNS:-1}
RATE=${BENCH_WRITE_RATE:-40}
# BENCH_BASELINE_REPO: another checkout, built (e.g. the commit before a change): each round moves
# with it too, interleaved, on the same fleet and tenant (a rollback in between, untimed).
declare -A BLOCKS TOTALS
SIDES=(tenantctl)
[[ -n "${BENCH_BASELINE_REPO:-}" ]] && SIDES+=(baseline)
one_move() {
  local side=$1 run=$2 tctl=("${BENCH_TENANTCTL[@]}")
  [[ $side == baseline ]] && tctl=(node "$BENCH_BASELINE_REPO/bin/tenantctl")
  local STOP="$BENCH_DIR/stop-$side-$run" IDS="$BENCH_DIR/ids-$side-$run" OUT="$BENCH_DIR/move-$side-$run.json" W="$BENCH_DIR/writer-$side-$run.json"
  WRITE_RATE=$RATE node bench/lib/steady-writer.mjs write "postgres://app_user:$APP_PASSWORD@127.0.0.1:$US/tenant_pool" app.tenant_id "$BIG" "$STOP" "$IDS" >"$W" &
  local WRITER=$!
  sleep 1
  local t0 t1
  t0=$EPOCHREALTIME
  "${tctl[@]}" --config "$BENCH_CONFIG" --json move big --to-shard eu1 --online >"$OUT" 2>"$BENCH_DIR/move.err" || { cat "$BENCH_DIR/move.err" "$OUT" >&2; touch "$STOP"; wait "$WRITER" || true; bench_die "move --online failed"; }
  t1=$EPOCHREALTIME
  sleep 0.5
  touch "$STOP"
  wait "$WRITER"
  local CHECK LEFT
  CHECK=$(node bench/lib/steady-writer.mjs check "postgres://postgres:$BENCH_PASSWORD@127.0.0.1:$EU/tenant_pool" "$BIG" "$IDS")
  LEFT=$(for p in "$US" "$EU"; do bench_psql "$p" tenant_pool -At -c "select (select count(*) from pg_publication) + (select count(*) from pg_subscription) + (select count(*) from pg_replication_slots)"; done | paste -sd+ | bc)
  echo "  [$side, round $((run + 1)) of $RUNS, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')]"
  node -e '
const fs = require("fs");
const [moveFile, writerFile, check, total, left] = process.argv.slice(1);
const d = JSON.parse(fs.readFileSync(moveFile, "utf8"));
const w = JSON.parse(fs.readFileSync(writerFile, "utf8"));
const c = JSON.parse(check);
const verdict = d.writeBlockedMs < 2000 ? "PASS" : "FAIL";
console.log(`  tenantctl move --online: ${(total / 1000).toFixed(2)}s in all, ${d.rows} rows verified; writes blocked ${d.writeBlockedMs} ms (target < 2000 ms): ${verdict}`);
console.log(`    phases ms ${JSON.stringify(Object.fromEntries(d.phases.map((p) => [p.phase, p.ms])))}${d.verifiedUnderFence ? `; compared under the fence: ${d.verifiedUnderFence.rows} rows of ${d.verifiedUnderFence.tables.join(", ") || "no table"}` : ""}`);
console.log(`  writer (${process.env.RATE}/s): ${w.ok} inserts committed, ${w.fenced} refused by the fence over ${w.fencedWindowMs} ms, other errors ${JSON.stringify(w.other)}; longest gap between commits ${w.longestGapBetweenCommitsMs} ms`);
console.log(`  committed before the fence: ${c.committedBeforeFence}, of them at the target after the switch: ${c.atTarget} (${c.atTarget === c.committedBeforeFence ? "none lost" : "LOST WRITES"})`);
console.log(`  publications, subscriptions and slots left on both shards: ${left}`);
' "$OUT" "$W" "$CHECK" "$(bench_elapsed_ms "$t0" "$t1")" "$LEFT"
  BLOCKS[$side]+=" $(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).writeBlockedMs)' "$OUT")"
  TOTALS[$side]+=" $(bench_elapsed_ms "$t0" "$t1")"
  # Back to the source for the next round (untimed): the copy removed, the source's fence lifted.
  if ((run + 1 < RUNS)) || [[ $side != "${SIDES[-1]}" ]]; then bench_tctl --quiet move rollback big --yes >/dev/null; fi
}

echo
echo "move-online: pool tenant of $N rows us1 -> eu1 under a steady writer ($RATE inserts/s), $(nproc 2>/dev/null || echo '?') cores:"
export RATE
for ((r = 0; r < RUNS; r++)); do for side in "${SIDES[@]}"; do one_move "$side" "$r"; done; done
for side in "${SIDES[@]}"; do
  echo "  $side: writes blocked median $(bench_median ${BLOCKS[$side]}) ms (${BLOCKS[$side]# }), move median $(bench_median ${TOTALS[$side]}) ms (${TOTALS[$side]# }), load now $(cut -d' ' -f1-3 /proc/loadavg)"
done
