#!/usr/bin/env bash
# After cluster/stop nothing says a cluster is up: no namespace, no pid file, no cluster.env; and
# cluster/exec and launch/mpirun --hosts then say that no local cluster is running (as ssh would
# say the host is unknown), even when the old holder's pid number belongs to a new process.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}"
cd "$DDP_SOURCE_DIR"
export DDP_SLURM_STATE=$(mktemp -d /tmp/ddp-stop-test.XXXXXX) DDP_CLUSTER_NAME=ddps$$ DDP_CLUSTER_NET=10.214.0
trap 'cluster/stop >/dev/null 2>&1 || true; rm -rf "$DDP_SLURM_STATE"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cluster/start --nodes 2 >/dev/null || fail "the cluster did not start"
cluster/exec node2 hostname | grep -qx node2 || fail "cluster/exec node2 does not reach node2"
holder=$(cat "$DDP_SLURM_STATE/node-head.pid")
cluster/stop >/dev/null
ip netns list | grep -q "^$DDP_CLUSTER_NAME-" && fail "namespaces left: $(ip netns list | grep "^$DDP_CLUSTER_NAME-")"
left=$(find "$DDP_SLURM_STATE" -name '*.pid' -o -name cluster.env -o -name 'munge.socket*')
[ -z "$left" ] || fail "state left behind: $left"
ls "$DDP_SLURM_STATE"/*.log >/dev/null 2>&1 || fail "the logs were not kept"
# A stale pid file pointing at a live process that is no node (this shell) must not be entered.
printf 'cluster_name=%s\ncluster_net=%s\ncluster_nodes=2\n' "$DDP_CLUSTER_NAME" "$DDP_CLUSTER_NET" >"$DDP_SLURM_STATE/cluster.env"
echo $$ >"$DDP_SLURM_STATE/node-head.pid"
echo $$ >"$DDP_SLURM_STATE/node-node1.pid"
out=$(cluster/exec node1 hostname 2>&1) && fail "cluster/exec entered a stale holder ($out)"
[ "$out" = "cluster/exec: no local cluster is running (cluster/start --nodes N)" ] || fail "cluster/exec said: $out"
rm -f "$DDP_SLURM_STATE/cluster.env" "$DDP_SLURM_STATE"/*.pid
out=$(launch/mpirun --hosts node1,node2 2 --config configs/mnist.yaml 2>&1) && fail "launch/mpirun ran on no cluster"
grep -q "^launch/mpirun: no local cluster is running (cluster/start --nodes N), and this machine knows no host 'node1'" \
  <<<"$out" || fail "launch/mpirun said: $out"
echo "ok: cluster/stop leaves no state (pid $holder gone), and exec and mpirun say that no local cluster is running"
