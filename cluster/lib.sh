# Sourced by cluster/start, cluster/stop and cluster/exec: where a local cluster keeps its
# state and what its nodes are called. One cluster = one state directory; a multi-node
# cluster records its layout in $state/cluster.env so that stop and exec find it again.
state=${DDP_SLURM_STATE:-/tmp/ddp-slurm}
cluster_env=$state/cluster.env
# stop and exec read what start recorded; start itself takes the environment.
if [ "${cluster_fresh:-0}" != 1 ] && [ -f "$cluster_env" ]; then
  # shellcheck source=/dev/null
  . "$cluster_env"
fi
# Namespaces are global on the machine: the name prefix keeps two clusters (a test's and
# one started by hand) apart. Addresses live only inside this cluster's namespaces, so
# the subnet cannot clash with another cluster, only confuse a reader of `ip route`.
cluster_name=${cluster_name:-${DDP_CLUSTER_NAME:-ddp}}
cluster_net=${cluster_net:-${DDP_CLUSTER_NET:-10.212.0}}
cluster_nodes=${cluster_nodes:-0}

# The network namespace of a node (node1..nodeN, or head: the controller and login node).
netns_of() { echo "$cluster_name-$1"; }
# node1 -> 10.212.0.1, head -> 10.212.0.254
addr_of() {
  case "$1" in
    head) echo "$cluster_net.254" ;;
    node*) echo "$cluster_net.${1#node}" ;;
  esac
}
node_names() { local i; for i in $(seq 1 "$cluster_nodes"); do echo "node$i"; done; }
# A node's first process: it holds the node's mount and UTS namespaces (cluster/exec enters
# them with nsenter). Killing every process of a node makes the node vanish.
holder_pid_file() { echo "$state/node-$1.pid"; }
