#!/usr/bin/env bash
# An online move by trigger capture (move --online with the least-privileged shard role, which may
# not create subscriptions: src/move/online-capture-run.ts) of a pool tenant between two shards
# under a steady write load, and what the capture triggers cost a NEIGHBOUR on the same pool
# (issue 16, item 11).
#
#   BENCH_ROWS=1000000 BENCH_WINDOW=10 flock /tmp/bench.lock bash bench/move-online-capture.sh
#
# Two embedded shards (us1, eu1), tenantctl connected as `tenantctl` (LOGIN CREATEDB CREATEROLE).
# `big` (BENCH_ROWS rows over its 5 tables) and `nb` (BENCH_ROWS/4) are pool tenants on us1.
# bench/lib/steady-writer.mjs inserts rows one after another through the serving role for each
# of them (as their applications would), in three windows:
#   A  BENCH_WINDOW s, no move: the baseline of both writers' commit latency;
#   B  BENCH_WINDOW s with the move's capture triggers installed and nothing else running (the
#      move held by the test hook move-hang-in-copy right after the snapshot's first table, then
#      interrupted with SIGTERM, which removes the triggers): the triggers' own cost;
#   C  the real move, start to end: write block (target < 2 s), the move's total, the neighbour's
#      latency while the move copies and replays, and every insert of big committed before the
#      fence found at the target.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"

N=${BENCH_ROWS:-1000000}
WINDOW=${BENCH_WINDOW:-10}
command -v psql >/dev/null || bench_die "needs psql on PATH"
export BENCH_SHARD_USER=tenantctl
bench_fleet_up 2
US=$BENCH_PORT_US1
EU=$BENCH_PORT_EU1
APP_PASSWORD=${TENANTCTL_APP_PASSWORD:-app-dev-password}
APP_URL="postgres://app_user:$APP_PASSWORD@127.0.0.1:$US/tenant_pool"

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

# writers NAME: start big's and nb's writers into $BENCH_DIR/NAME-{big,nb}.json; stop with stop_writers NAME.
writers() {
  rm -f "$BENCH_DIR/stop-$1"
  node bench/lib/steady-writer.mjs write "$APP_URL" app.tenant_id "$BIG" "$BENCH_DIR/stop-$1" "$BENCH_DIR/ids-$1" >"$BENCH_DIR/$1-big.json" &
  W1=$!
  node bench/lib/steady-writer.mjs write "$APP_URL" app.tenant_id "$NB" "$BENCH_DIR/stop-$1" "$BENCH_DIR/nbids-$1" >"$BENCH_DIR/$1-nb.json" &
  W2=$!
}
stop_writers() {
  touch "$BENCH_DIR/stop-$1"
  wait "$W1" "$W2"
}
triggers() { bench_psql "$US" tenant_pool -At -c "select count(*) from pg_trigger where tgname like 'tenantctl\\_capture%'"; }

bench_log "move-online-capture: creating big ($N rows) and nb ($((N / 4)) rows) on us1"
for t in big nb; do bench_tctl --quiet tenant create "$t" --tier free --shard us1 >/dev/null; done
BIG=$(key_of big)
NB=$(key_of nb)
seed "$US" "$BIG" "$N"
seed "$US" "$NB" $((N / 4))
bench_psql "$US" tenant_pool -c 'vacuum analyze'
bench_tctl --json move big --to-shard eu1 --online --dry-run >"$BENCH_DIR/dry.json"

bench_log "move-online-capture: A, ${WINDOW}s of both writers without a move"
writers A
sleep "$WINDOW"
stop_writers A

bench_log "move-online-capture: B, ${WINDOW}s of both writers with the capture triggers installed (the move held)"
# The CLI itself in the background (not through a function's subshell), so that $! is its pid.
TENANTCTL_INJECT_FAULT=move-hang-in-copy "${BENCH_TENANTCTL[@]}" --config "$BENCH_CONFIG" --json move big --to-shard eu1 --online >"$BENCH_DIR/held.json" 2>"$BENCH_DIR/held.err" &
HELD=$!
for _ in $(seq 1 600); do [[ $(triggers) -gt 0 ]] && break; sleep 0.1; done
[[ $(triggers) -gt 0 ]] || bench_die "the capture triggers never appeared"
sleep 1
writers B
sleep "$WINDOW"
stop_writers B
kill -TERM "$HELD"
wait "$HELD" || true
[[ $(triggers) -eq 0 ]] || bench_die "the interrupted move left its capture triggers"

bench_log "move-online-capture: C, moving big us1 -> eu1 online under both writers"
writers C
sleep 1
t0=$EPOCHREALTIME
bench_tctl --json move big --to-shard eu1 --online >"$BENCH_DIR/move.json" 2>"$BENCH_DIR/move.err" || { cat "$BENCH_DIR/move.err" "$BENCH_DIR/move.json" >&2; stop_writers C || true; bench_die "move --online failed"; }
t1=$EPOCHREALTIME
sleep 0.5
stop_writers C
CHECK=$(node bench/lib/steady-writer.mjs check "postgres://postgres:$BENCH_PASSWORD@127.0.0.1:$EU/tenant_pool" "$BIG" "$BENCH_DIR/ids-C")
LEFT=$(bench_psql "$US" tenant_pool -At -c "select (select count(*) from pg_trigger where tgname like 'tenantctl\\_capture%') + (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'tenantctl_capture')")

echo
echo "move-online-capture: pool tenant of $N rows us1 -> eu1 as tenantctl (LOGIN CREATEDB CREATEROLE), $(nproc 2>/dev/null || echo '?') cores, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'):"
node -e '
const fs = require("fs");
const [dir, check, total, left] = process.argv.slice(1);
const j = (f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
const dry = j("dry.json"), d = j("move.json"), c = JSON.parse(check);
const A = { big: j("A-big.json"), nb: j("A-nb.json") }, B = { big: j("B-big.json"), nb: j("B-nb.json") }, C = { big: j("C-big.json"), nb: j("C-nb.json") };
const r = (x, y) => (y ? (x / y).toFixed(2) : "n/a");
const lat = (w) => `mean ${w.latencyMs.mean} ms, p50 ${w.latencyMs.p50}, p99 ${w.latencyMs.p99}, ${w.ok} commits`;
console.log(`  dry run: online via ${dry.onlineVia} (${dry.notReplication ?? ""})`);
const verdict = d.writeBlockedMs < 2000 ? "PASS" : "FAIL";
console.log(`  move --online (via ${d.onlineVia}): ${(total / 1000).toFixed(2)}s in all, ${d.rows} rows verified; writes blocked ${d.writeBlockedMs} ms (target < 2000 ms): ${verdict}`);
console.log(`    phases ms ${JSON.stringify(Object.fromEntries(d.phases.map((p) => [p.phase, p.ms])))}`);
console.log(`  big, committed before the fence: ${c.committedBeforeFence}, at the target after the switch: ${c.atTarget} (${c.atTarget === c.committedBeforeFence ? "none lost" : "LOST WRITES"}); refused by the fence ${C.big.fenced} over ${C.big.fencedWindowMs} ms, other errors ${JSON.stringify(C.big.other)}`);
console.log(`  neighbour nb latency  A no move: ${lat(A.nb)}`);
console.log(`                        B triggers installed: ${lat(B.nb)}  -> mean ratio B/A ${r(B.nb.latencyMs.mean, A.nb.latencyMs.mean)}, p99 ratio ${r(B.nb.latencyMs.p99, A.nb.latencyMs.p99)}`);
console.log(`                        C during the move: ${lat(C.nb)}  -> mean ratio C/A ${r(C.nb.latencyMs.mean, A.nb.latencyMs.mean)}, p99 ratio ${r(C.nb.latencyMs.p99, A.nb.latencyMs.p99)}; errors ${JSON.stringify(C.nb.other)}, fenced ${C.nb.fenced}`);
console.log(`  big (the captured tenant) latency A: ${lat(A.big)}; B: ${lat(B.big)} -> mean ratio ${r(B.big.latencyMs.mean, A.big.latencyMs.mean)}`);
console.log(`  capture triggers and change tables left on us1: ${left}`);
' "$BENCH_DIR" "$CHECK" "$(bench_elapsed_ms "$t0" "$t1")" "$LEFT"
