#!/usr/bin/env bash
# launch/mpirun over the nodes of a running local cluster (tests/cluster/with_cluster.sh
# starts it): ranks land on the hosts given, in blocks, with the right local ranks and
# hostnames; the all-reduce's bytes cross the nodes' eth0; ddp-bench-comm finds the raw TCP
# link between the nodes; and training over two nodes ends bitwise equal to the same run
# on one host.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_SLURM_STATE:?}"
cd "$DDP_SOURCE_DIR"
train=${DDP_TRAIN:-$PWD/build/ddp-train}
bench=$(dirname "$train")/ddp-bench-comm
. cluster/lib.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_line() { grep -qxF -- "$2" <<<"$1" || { echo "$1" >&2; fail "expected the line '$2'"; }; }

# Placement: 4 ranks on two hosts without slots -> 2 each, ranks 0-1 on node1.
out=$(DDP_TRAIN=$bench timeout 120 launch/mpirun --hosts node1,node2 4 -b 4096 -e 4096 -n 5 --no-tcp) \
  || fail "4 ranks over node1,node2 failed: $out"
expect_line "$out" "# rank 0 on node1 (local rank 0 of 2)"
expect_line "$out" "# rank 1 on node1 (local rank 1 of 2)"
expect_line "$out" "# rank 2 on node2 (local rank 0 of 2)"
expect_line "$out" "# rank 3 on node2 (local rank 1 of 2)"
# A host the running cluster lacks is named as such (it used to read "no local cluster is running").
for hosts in node1,node3 node3,node4; do
  rc=0
  out=$(DDP_TRAIN=$bench timeout 60 launch/mpirun --hosts "$hosts" 2 -b 4096 -e 4096 -n 1 --no-tcp 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "--hosts $hosts on a 2-node cluster exited $rc, not 2: $out"
  expect_line "$out" "launch/mpirun: host 'node3' is not a node of the running local cluster, whose nodes are node1,node2 (cluster/stop, then cluster/start --nodes N for more)"
done
# A hostfile's slots are kept: 1 on node1, 3 on node2.
printf '# test hosts\nnode1 slots=1\nnode2 slots=3\n' >"$work/hosts"
out=$(DDP_TRAIN=$bench timeout 120 launch/mpirun --hostfile "$work/hosts" 4 -b 4096 -e 4096 -n 5 --no-tcp) \
  || fail "4 ranks from a hostfile failed: $out"
expect_line "$out" "# rank 0 on node1 (local rank 0 of 1)"
expect_line "$out" "# rank 3 on node2 (local rank 2 of 3)"
echo "ok: placement and local ranks over node1,node2 (--hosts and --hostfile)"

# The interface: a 2-rank all-reduce of 4 MiB x 16 sends 67 MB from each rank; at least
# 64 MB of it must leave through node1's eth0 (its own /sys: the node's network namespace),
# and every result must be exact.
tx() { cluster/exec node1 cat /sys/class/net/eth0/statistics/tx_bytes; }
before=$(tx)
out=$(DDP_TRAIN=$bench timeout 120 launch/mpirun --hosts node1,node2 2 -b 4194304 -e 4194304 -n 10 -w 5 --no-tcp) \
  || fail "2 ranks over node1,node2 failed: $out"
sent=$(( $(tx) - before ))
read -r _ _ _ _ _ _ wrong _ < <(grep '^ *4194304 ' <<<"$out") || fail "no 4 MiB row in: $out"
[ "$wrong" = 0 ] || fail "$wrong wrong elements in the 4 MiB all-reduce"
[ "$sent" -ge 64000000 ] || fail "node1's eth0 sent only $sent bytes during 16 all-reduces of 4 MiB"
echo "ok: 16 all-reduces of 4 MiB between node1 and node2 exact; node1's eth0 sent $sent bytes"

# The yardstick: ddp-bench-comm times a plain socket from node1 to node2's eth0 address.
out=$(DDP_TRAIN=$bench timeout 120 launch/mpirun --hosts node1,node2 2 -b 409600 -e 409600 -n 20) \
  || fail "ddp-bench-comm with raw TCP failed: $out"
echo "$out"
grep -q "^# raw TCP: rank 0 -> rank 1 at $(addr_of node2):[0-9]* (eth0 on the receiver)" <<<"$out" \
  || fail "ddp-bench-comm did not time the raw TCP link to node2's eth0"
read -r _ _ _ _ _ _ _ tcpbw _ < <(grep '^ *409600 ' <<<"$out")
[[ $tcpbw =~ ^[0-9.]+$ ]] && awk -v b="$tcpbw" 'BEGIN { exit !(b > 0) }' || fail "no raw TCP throughput in the 400 KB row ('$tcpbw')"
echo "ok: raw TCP node1 -> node2 at $tcpbw GB/s beside the all-reduce"

# Training: 2 nodes x 1 rank ends bitwise where 2 ranks on one host end. The wrapper logs
# each rank's hostname as the trainer will see it.
cat >"$work/train" <<EOF
#!/bin/sh
echo "\$OMPI_COMM_WORLD_RANK \$(hostname)" >>"$work/hosts-seen"
exec "$train" "\$@"
EOF
chmod +x "$work/train"
run=(--config configs/mnist.yaml train.epochs=2 optim.momentum=0.9 output.progress=false)
timeout 300 launch/mpirun 2 "${run[@]}" output.dir="$work/one" >"$work/one.log" 2>&1 \
  || { cat "$work/one.log"; fail "the one-host reference run failed"; }
DDP_TRAIN=$work/train timeout 300 launch/mpirun --hosts node1,node2 2 "${run[@]}" output.dir="$work/two" \
  >"$work/two.log" 2>&1 || { cat "$work/two.log"; fail "the run over node1,node2 failed"; }
[ "$(sort "$work/hosts-seen" | tr '\n' ' ')" = "0 node1 1 node2 " ] \
  || fail "ranks ran on $(sort "$work/hosts-seen" | tr '\n' ' '), expected rank 0 on node1 and rank 1 on node2"
python3 - "$work/one/summary.json" "$work/two/summary.json" <<'PY'
import json, sys
one, two = (json.load(open(p)) for p in sys.argv[1:])
assert two["world_size"] == 2, two["world_size"]
assert one["parameters_crc32"] == two["parameters_crc32"], \
    f"2 nodes ended at {two['parameters_crc32']}, one host at {one['parameters_crc32']}"
if "hosts" in two:
    assert sorted(two["hosts"]) == ["node1", "node2"], f"summary hosts {two['hosts']}"
print(f"ok: 2 nodes x 1 rank trained bitwise like one host (parameters_crc32 {two['parameters_crc32']}); "
      f"{two['samples_per_second']:.0f} vs {one['samples_per_second']:.0f} samples/s")
PY
