#!/usr/bin/env bash
# The quick start: bring up the embedded fleet and show tenantctl's main job on it.
set -euo pipefail
cd "$(dirname "$0")/.."
t() { echo "\$ tenantctl $*" >&2; node bin/tenantctl "$@"; }
t dev up
for slug in demo-pool demo-schema demo-db; do
  t tenant delete "$slug" --yes >/dev/null 2>&1 || true
done
t tenant create demo-pool --tier free
t tenant create demo-schema --tier standard
t tenant create demo-db --tier enterprise --region eu-west
t migrate up
t migrate status
t tenant list
t resolve demo-db
t doctor
