#!/usr/bin/env bash
# Backup and restore of a schema tenant through an S3-compatible server against the same to a
# folder, and against plain streaming with the AWS SDK's own uploader (issue 21).
#
#   bash bench/s3-backup.sh                        # a schema tenant of 1,000,000 rows (BENCH_ROWS)
#   BENCH_ROWS=100000 BENCH_RUNS=3 bash bench/s3-backup.sh
#
# One embedded shard (least-privileged role `tenantctl`, as bench/backup.sh) and an s3rver in its
# own process (bench/lib/s3rver.mjs, objects on the local disk). Two configs on the same fleet:
# region us-east's backups in a folder, or in bucket us-east-backups of the s3rver. `sbig` has
# BENCH_ROWS rows, `ssmall` a tenth of them. BENCH_RUNS (3) rounds, the three sides interleaved:
#   backup:  tenantctl backup create sbig (S3) | the same (folder) | pg_dump -Fc -n t_sbig | SDK Upload from stdin
#   restore: tenantctl restore <id> --as … (S3) | the same (folder) | GetObject | pg_restore -d <fresh database>
# Then the peak RSS (GNU time) of tenantctl backup and restore through S3, and of the baseline's
# uploader, at BENCH_ROWS/10 and BENCH_ROWS rows. Targets: S3 within 1.3x of the folder and of the
# baseline; RSS flat.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$BENCH_REPO"

N=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
[[ -x /usr/bin/time ]] || bench_die "needs /usr/bin/time (GNU time) for the peak RSS"
for p in psql pg_dump pg_restore; do command -v "$p" >/dev/null || bench_die "needs $p on PATH"; done

bench_require_built
BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tenantctl-bench-XXXXXX")"
chmod 0755 "$BENCH_DIR"
S3_PID=""
s3_cleanup() {
  local rc=$?
  [[ -n "$S3_PID" ]] && kill "$S3_PID" 2>/dev/null && wait "$S3_PID" 2>/dev/null
  (exit "$rc")
  bench_cleanup
}
trap s3_cleanup EXIT
trap 'exit 130' INT TERM
eval "$(node bench/lib/fleet-config.mjs "$BENCH_DIR" 1)"
sed -i 's#postgres://postgres:#postgres://tenantctl:#' "$BENCH_CONFIG"

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
mkdir -p "$BENCH_DIR/s3"
node bench/lib/s3rver.mjs "$BENCH_DIR/s3" us-east-backups raw >"$BENCH_DIR/s3.port" 2>"$BENCH_DIR/s3.log" &
S3_PID=$!
for _ in $(seq 100); do [[ -s "$BENCH_DIR/s3.port" ]] && break; sleep 0.1; done
[[ -s "$BENCH_DIR/s3.port" ]] || { cat "$BENCH_DIR/s3.log" >&2; bench_die "s3rver did not start"; }
EP="http://127.0.0.1:$(head -1 "$BENCH_DIR/s3.port")"
S3_CONFIG="$BENCH_DIR/s3.config.yaml"
node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import { parseDocument } from "yaml";
  const [from, to, endpoint] = process.argv.slice(1);
  const doc = parseDocument(readFileSync(from, "utf8"));
  doc.setIn(["regions", "us-east", "backup"], doc.createNode({ s3: { bucket: "us-east-backups", prefix: "tenantctl", endpoint, region: "us-east-1", forcePathStyle: true } }));
  writeFileSync(to, doc.toString());' "$BENCH_CONFIG" "$S3_CONFIG" "$EP"

bench_log "s3-backup: starting an embedded fleet in $BENCH_DIR, s3rver at $EP"
bench_tctl --quiet dev up >"$BENCH_DIR/dev-up.log" 2>&1 || { cat "$BENCH_DIR/dev-up.log" >&2; bench_die "dev up failed"; }
PORT=$BENCH_PORT_US1
source "$(dirname "$0")/lib/backup-lib.sh"
export PGPASSWORD="$BENCH_PASSWORD" PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=tenantctl
s3_tctl() { BENCH_CONFIG=$S3_CONFIG bench_tctl "$@"; }

bench_log "s3-backup: creating sbig ($N rows) and ssmall ($((N / 10)) rows)"
bench_tctl --quiet tenant create sbig --tier standard >/dev/null
bench_tctl --quiet tenant create ssmall --tier standard >/dev/null
seed tenant_schemas t_sbig "$(key_of sbig)" "$N"
seed tenant_schemas t_ssmall "$(key_of ssmall)" $((N / 10))
PGOPTIONS='-c client_min_messages=error' role_psql tenant_schemas -c 'vacuum analyze'

raw_up() { pg_dump -Fc -n "t_$1" -d tenant_schemas | node bench/lib/s3-pipe.mjs up "$EP" raw "$1.pgc"; }
raw_down() {
  role_psql postgres -c 'drop database if exists raw_restore' -c 'create database raw_restore' >/dev/null
  node bench/lib/s3-pipe.mjs down "$EP" raw "$1.pgc" | pg_restore --no-owner -d raw_restore
}

# three NAME CMD AFTER (x3): RUNS rounds of the three sides in turn (A B C A B C …); medians into
# T[NAME]. AFTER runs untimed after each side's run (cleanup). $i is the round.
three() {
  local -a names=("$1" "$4" "$7") cmds=("$2" "$5" "$8") afters=("$3" "$6" "$9")
  local -A xs=()
  local i k
  for ((i = 0; i < RUNS; i++)); do
    for k in 0 1 2; do
      xs[$k]+=" $(eval "time_ms ${cmds[$k]}")"
      [[ -n "${afters[$k]}" ]] && eval "${afters[$k]}"
    done
  done
  for k in 0 1 2; do
    # shellcheck disable=SC2086
    T[${names[$k]}]=$(bench_median ${xs[$k]})
    bench_log "  ${names[$k]}: median ${T[${names[$k]}]} ms (${xs[$k]# })"
  done
}

bench_log "s3-backup: backup of $N rows, $RUNS round(s)"
three backup-s3 's3_tctl --quiet backup create sbig' '' \
  backup-dir 'bench_tctl --quiet backup create sbig' '' \
  backup-raw 'raw_up sbig' ''
S3_ID=$(BENCH_CONFIG=$S3_CONFIG last_backup sbig)
DIR_ID=$(last_backup sbig)
bench_log "s3-backup: restore of $N rows, $RUNS round(s)"
three restore-s3 's3_tctl --quiet restore "$S3_ID" --as "rs$i"' 'drop_clone "rs$i"' \
  restore-dir 'bench_tctl --quiet restore "$DIR_ID" --as "rd$i"' 'drop_clone "rd$i"' \
  restore-raw 'raw_down sbig' ''

bench_log "s3-backup: peak RSS"
declare -A R
rss() { peak_rss_mb node bin/tenantctl --config "$S3_CONFIG" --quiet "$@"; }
R[small-backup]=$(rss backup create ssmall)
R[big-backup]=$(rss backup create sbig)
R[small-restore]=$(rss restore "$(BENCH_CONFIG=$S3_CONFIG last_backup ssmall)" --as rss-a)
R[big-restore]=$(rss restore "$S3_ID" --as rss-b)
raw_rss() { pg_dump -Fc -n "t_$1" -d tenant_schemas | peak_rss_mb node bench/lib/s3-pipe.mjs up "$EP" raw "$1.pgc"; }
R[small-raw]=$(raw_rss ssmall)
R[big-raw]=$(raw_rss sbig)

verdict() { awk -v r="$1" -v m="$2" 'BEGIN { print (r <= m) ? "PASS" : "FAIL" }'; }
line() { # line WHAT A B: "WHAT A vs B: ratio"
  local r
  r=$(bench_ratio "${T[$2]}" "${T[$3]}")
  echo "  $1 $(bench_secs "${T[$2]}") vs $4 $(bench_secs "${T[$3]}"): ${r}x (target <= 1.3x): $(verdict "$r" 1.3)"
}
echo
echo "s3-backup: schema tenant of $N rows, medians of $RUNS interleaved round(s), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg):"
line 'backup to S3 ' backup-s3 backup-dir 'to a folder'
line 'backup to S3 ' backup-s3 backup-raw 'pg_dump -Fc | SDK Upload'
line 'restore from S3' restore-s3 restore-dir 'from a folder'
line 'restore from S3' restore-s3 restore-raw 'GetObject | pg_restore'
echo "s3-backup: peak RSS MB at $((N / 10)) / $N rows: backup to S3 ${R[small-backup]} / ${R[big-backup]}, restore from S3 ${R[small-restore]} / ${R[big-restore]}, SDK Upload of pg_dump ${R[small-raw]} / ${R[big-raw]}"
