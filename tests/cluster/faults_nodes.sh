#!/usr/bin/env bash
# Faults on a running local cluster of 2 nodes (tests/cluster/with_cluster.sh starts it),
# one rank per node under launch/mpirun:
#  (c) a stalled rank: rank 1 on node2 stopped with SIGSTOP. A warning names it at a quarter
#      of the deadline, then the deadline ends the job naming it.
#  (b) a network partition: node2's eth0 goes down mid-training. The job ends within
#      comm.timeout_s + 10 s naming the rank it lost, mpirun included (it cannot reach
#      node2's daemon to clean up); the newest checkpoint is intact, and with the link back
#      `--resume` ends bitwise where an uninterrupted run ends.
#  (a) a node dies: every process in node2's namespace (its ranks, Open MPI's daemon,
#      slurmd, the process that holds the node) killed with SIGKILL. The job ends non-zero
#      within the deadline. This check runs last: node2 is gone afterwards.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_SLURM_STATE:?}"
cd "$DDP_SOURCE_DIR"
train=${DDP_TRAIN:-$PWD/build/ddp-train}
. cluster/lib.sh
node2_ns=$(netns_of node2)
work=$(mktemp -d)
# Whatever happens, node2's link comes back up (later checks, and cluster/stop, expect it).
# A stopped or cut-off rank must not outlive a failed check either.
trap 'ip -n "$node2_ns" link set eth0 up 2>/dev/null; pkill -9 -f "ddp-train.*$work" || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
deadline=6
crc_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$1/summary.json"; }
# ddp-train processes of a run directory, in any namespace (the nodes share the process table).
ranks_of() { pgrep -f "ddp-train.*$1" || true; }
wait_for_epochs() {  # RUN_DIR N: until metrics.jsonl holds N epochs, at most 120 s
  for _ in $(seq 1 600); do
    [ -f "$1/metrics.jsonl" ] && [ "$(wc -l <"$1/metrics.jsonl")" -ge "$2" ] && return
    sleep 0.2
  done
  fail "no $2 epochs in $1 after 120 s"
}
# run_until_fault NAME FAULT-COMMAND: starts 2 ranks over node1,node2, lets 3 epochs pass,
# runs the fault, and waits for the launcher; sets rc and elapsed_ms (from the fault).
setup=(--config configs/mnist.yaml train.epochs=30 optim.momentum=0.9 checkpoint.every_epochs=2
       checkpoint.keep=3 output.progress=false comm.timeout_s=$deadline)
run_until_fault() {
  local name=$1 start launcher
  shift
  timeout 120 launch/mpirun --hosts node1,node2 2 "${setup[@]}" output.dir="$work/$name" >"$work/$name.log" 2>&1 &
  launcher=$!
  wait_for_epochs "$work/$name" 3
  kill -0 "$launcher" 2>/dev/null || { cat "$work/$name.log"; fail "$name: the job ended before the fault"; }
  start=$(date +%s%N)
  "$@"
  set +e
  wait "$launcher"
  rc=$?
  set -e
  elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "--- $name: exit $rc after ${elapsed_ms} ms"
  cat "$work/$name.log"
}

# (c) A stalled rank on node2.
stop_rank1() {
  local pid
  for pid in $(ranks_of "$work/stall"); do
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && { kill -STOP "$pid"; return; }
  done
  fail "stall: rank 1 not found"
}
run_until_fault stall stop_rank1
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "the stalled job exited $rc, not an error"
[ "$elapsed_ms" -le $(( (deadline + 10) * 1000 )) ] || fail "the stalled job took ${elapsed_ms} ms, more than comm.timeout_s + 10 s"
grep -Eq "^ddp-train: warning: rank 0 \(node1\): .*waiting [0-9.]+ s for rank 1 \(node2\)" "$work/stall.log" \
  || fail "no stall warning named rank 1 (node2)"
grep -Eq "^ddp-train: error: rank 0 \(node1\): .*rank 1 \(node2\) did not arrive" "$work/stall.log" \
  || fail "the deadline did not name rank 1 (node2)"
for _ in $(seq 1 50); do [ -z "$(ranks_of "$work/stall")" ] && break; sleep 0.2; done
[ -z "$(ranks_of "$work/stall")" ] || fail "ranks of the stalled job still run"
echo "ok: stall: a warning, then the job ended (exit $rc) after ${elapsed_ms} ms naming rank 1 (node2)"

# (b) The partition.
run_until_fault partition ip -n "$node2_ns" link set eth0 down
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "the partitioned job exited $rc (124: the test's timeout), not an error"
[ "$elapsed_ms" -le $(( (deadline + 10) * 1000 )) ] || fail "the partitioned job took ${elapsed_ms} ms, more than comm.timeout_s + 10 s"
grep -Eq "^ddp-train: error: rank 0 \(node1\): .*did not complete within $deadline s \(comm\.timeout_s\): rank 1 \(node2\) did not arrive" \
  "$work/partition.log" || fail "rank 0 did not name rank 1 (node2) as the rank that did not arrive"
echo "ok: partition: the job ended (exit $rc) after ${elapsed_ms} ms naming rank 1 (node2)"
ip -n "$node2_ns" link set eth0 up
# Rank 1, cut off on node2, ends by its own deadline; nothing of the job may stay behind.
for _ in $(seq 1 100); do [ -z "$(ranks_of "$work/partition")" ] && break; sleep 0.2; done
[ -z "$(ranks_of "$work/partition")" ] || fail "ranks of the partitioned job still run: $(ranks_of "$work/partition")"
newest=$(ls "$work/partition/checkpoints"/ckpt-*.ddpckpt | tail -n 1)
timeout 300 launch/mpirun --hosts node1,node2 2 "${setup[@]}" output.dir="$work/partition" --resume \
  >"$work/resume.log" 2>&1 || { cat "$work/resume.log"; fail "the resume after the partition failed"; }
grep -q "resuming from $newest" "$work/resume.log" || { cat "$work/resume.log"; fail "the resume did not start from the newest checkpoint $newest"; }
timeout 300 launch/mpirun 2 "${setup[@]}" output.dir="$work/reference" >"$work/reference.log" 2>&1 \
  || { cat "$work/reference.log"; fail "the uninterrupted reference run failed"; }
[ "$(crc_of "$work/partition")" = "$(crc_of "$work/reference")" ] \
  || fail "resumed after the partition: parameters $(crc_of "$work/partition"), uninterrupted $(crc_of "$work/reference")"
echo "ok: partition: resumed from $(basename "$newest") with the link back, bitwise equal to the uninterrupted run ($(crc_of "$work/reference"))"

# (a) The node dies: everything in its namespace, at once.
run_until_fault node-death sh -c "ip netns pids '$node2_ns' | xargs -r kill -9"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "the job that lost node2 exited $rc, not an error"
[ "$elapsed_ms" -le $(( deadline * 1000 )) ] || fail "the job that lost node2 took ${elapsed_ms} ms, more than comm.timeout_s"
for _ in $(seq 1 50); do [ -z "$(ranks_of "$work/node-death")" ] && break; sleep 0.2; done
[ -z "$(ranks_of "$work/node-death")" ] || fail "ranks of the job that lost node2 still run"
echo "ok: node death: the job ended (exit $rc) ${elapsed_ms} ms after every process of node2 was killed"
