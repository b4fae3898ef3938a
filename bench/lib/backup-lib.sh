# Helpers of the backup benchmarks (bench/backup.sh, bench/s3-backup.sh). Source it after
# common.sh, once the fleet is up and PORT, RUNS and BENCH_PASSWORD are set.

# psql as the shard role (same password as the superuser in the bench fleet).
role_psql() { local db=$1; shift; PGPASSWORD="$BENCH_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U tenantctl -d "$db" "$@"; }

key_of() { bench_tctl --json tenant show "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tenant.key))'; }

last_backup() { bench_tctl --json backup list "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s).backups;console.log(b[b.length-1].id)})'; }

# seed DB SCHEMA KEY ROWS: ROWS rows over workspaces, users, projects, tasks, comments.
seed() {
  local db=$1 s=$2 k=$3 n=$4
  local users=$((n / 100 + 1)) tasks=$((n * 55 / 100)) comments=$((n * 44 / 100))
  role_psql "$db" <<SQL
insert into "$s".workspaces (id, name) values ('$k', 'bench');
insert into "$s".users (tenant_id, id, email, display_name)
  select '$k', md5('$k' || i)::uuid, 'user' || i || '@example.com', 'User number ' || i from generate_series(1, $users) i;
insert into "$s".projects (tenant_id, id, name, owner_id)
  select '$k', md5('p$k' || i)::uuid, 'Project ' || i, md5('$k' || 1)::uuid from generate_series(1, 100) i;
insert into "$s".tasks (tenant_id, id, project_id, title, status, due_on)
  select '$k', md5('t$k' || i)::uuid, md5('p$k' || (1 + i % 100))::uuid, 'Task number ' || i || ' with a title', 'todo', date '2026-01-01' + i % 365
    from generate_series(1, $tasks) i;
insert into "$s".comments (tenant_id, task_id, author_id, body)
  select '$k', md5('t$k' || (1 + i % $tasks))::uuid, md5('$k' || (1 + i % $users))::uuid, 'A comment of ordinary length, number ' || i
    from generate_series(1, $comments) i;
SQL
}

# time_ms CMD...: wall time of one run in ms (output discarded; failure is fatal).
time_ms() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@" >"$BENCH_DIR/last.out" 2>"$BENCH_DIR/last.err" || { cat "$BENCH_DIR/last.err" >&2; bench_die "failed: $*"; }
  t1=$EPOCHREALTIME
  bench_elapsed_ms "$t0" "$t1"
}

declare -A T
# pair NAME_A CMD_A NAME_B CMD_B [AFTER_A]: RUNS rounds, the two sides interleaved (A B A B …) so
# that a busy machine slows both alike; medians into T[NAME_A], T[NAME_B]. CMD_A and CMD_B are
# shell snippets; AFTER_A runs untimed after each A (cleanup). $i is the round.
pair() {
  local na=$1 ca=$2 nb=$3 cb=$4 after=${5:-}
  local xa=() xb=() i
  for ((i = 0; i < RUNS; i++)); do
    xa+=("$(eval "time_ms $ca")")
    [[ -n "$after" ]] && eval "$after"
    xb+=("$(eval "time_ms $cb")")
  done
  T[$na]=$(bench_median "${xa[@]}")
  T[$nb]=$(bench_median "${xb[@]}")
  bench_log "  $na: median ${T[$na]} ms (${xa[*]}); $nb: median ${T[$nb]} ms (${xb[*]})"
}

# Restore as a new tenant (timed); the clone is dropped afterwards, untimed.
tctl_restore_as() { bench_tctl --quiet restore "$1" --as "$2" >/dev/null; }
drop_clone() { bench_tctl --quiet tenant delete "$1" --yes --skip-backup >/dev/null; }

# peak_rss_mb CMD...: peak RSS in MB of one run (GNU time; output discarded, failure fatal).
peak_rss_mb() {
  /usr/bin/time -f '%M' -o "$BENCH_DIR/rss.txt" "$@" >/dev/null 2>"$BENCH_DIR/rss.err" || { cat "$BENCH_DIR/rss.err" >&2; bench_die "failed: $*"; }
  awk '{ printf "%.0f", $1 / 1024 }' "$BENCH_DIR/rss.txt"
}
