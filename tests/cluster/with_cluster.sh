#!/usr/bin/env bash
# Starts one local multi-node cluster (cluster/start --nodes N) and runs each check script
# against it, so the multi-node checks pay for one start:
#   tests/cluster/with_cluster.sh N CHECK.sh [CHECK.sh...]
# Each check runs with DDP_SLURM_STATE, DDP_CLUSTER_NAME and SLURM_CONF pointing at this
# cluster (namespaces and state of its own, so a cluster started by hand is left alone).
# A failed check does not stop the others; the script fails if any did, and the EXIT trap
# stops the cluster (daemons, namespaces, links) whatever happened.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}"
cd "$DDP_SOURCE_DIR"
nodes=${1:?usage: with_cluster.sh N CHECK.sh...}; shift
export DDP_SLURM_STATE=$(mktemp -d /tmp/ddp-cluster-test.XXXXXX)
export DDP_CLUSTER_NAME=ddpt$$ SLURM_CONF=$DDP_SLURM_STATE/slurm.conf
cleanup() {
  cluster/stop >/dev/null 2>&1 || true
  if ip netns list | grep -q "^$DDP_CLUSTER_NAME-"; then
    echo "FAIL: cluster/stop left namespaces behind: $(ip netns list | grep "^$DDP_CLUSTER_NAME-" | tr '\n' ' ')" >&2
    exit 1
  fi
  rm -rf "$DDP_SLURM_STATE"
}
trap cleanup EXIT

if ! start_output=$(cluster/start --nodes "$nodes" 2>&1); then
  echo "FAIL: the local $nodes-node cluster could not be started:" >&2
  echo "$start_output" >&2
  for log in "$DDP_SLURM_STATE"/*.log "$DDP_SLURM_STATE"/munge/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
fi
echo "$start_output" | head -n 1

failed=()
for check in "$@"; do
  echo "=== $check"
  start=$SECONDS
  if bash "$check"; then
    echo "=== ok: $check ($((SECONDS - start)) s)"
  else
    echo "=== FAIL: $check ($((SECONDS - start)) s)"
    failed+=("$check")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "FAIL: ${failed[*]}"; exit 1; }
echo "ok: ${#@} checks on $nodes nodes"
