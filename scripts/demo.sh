#!/usr/bin/env bash
# The quick start: bring up the embedded fleet and show tenantctl's main job on it.
# It deletes and creates demo-* tenants, so it runs on the shipped ./tenants.config.yaml only
# (never on the fleet TENANTCTL_CONFIG names) and only when every shard of it is embedded.
set -euo pipefail
cd "$(dirname "$0")/.."
config="$PWD/tenants.config.yaml"
if [[ -n "${TENANTCTL_CONFIG:-}" ]]; then
  echo "demo: ignoring TENANTCTL_CONFIG=$TENANTCTL_CONFIG; the demo runs on $config only" >&2
fi
unset TENANTCTL_CONFIG
node scripts/demo-guard.mjs "$config"
t() { echo "\$ tenantctl $*" >&2; node bin/tenantctl --config "$config" "$@"; }
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
