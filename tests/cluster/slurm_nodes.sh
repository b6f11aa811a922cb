#!/usr/bin/env bash
# Slurm over the nodes of a running local cluster (tests/cluster/with_cluster.sh starts
# it): `sbatch -N 2 --ntasks-per-node=1 launch/slurm/ddp-train.sbatch`, submitted from the
# head node, runs one rank on node1 and one on node2 under srun --mpi=pmix and succeeds;
# then a second such job, given output.dir=DIR on its command line, is preempted (USR1 to the
# batch script), requeues itself, resumes in DIR and ends bitwise equal to an uninterrupted run.
# First, cluster/start on the running cluster: the same node count is a no-op, another refused.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_SLURM_STATE:?}" "${SLURM_CONF:?}"
cd "$DDP_SOURCE_DIR"
train=${DDP_TRAIN:-$PWD/build/ddp-train}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Slurm's clients reach the controller from inside the cluster, as from a login node.
on_head() { cluster/exec head "$(printf '%q ' "$@")"; }

# cluster/start again (issue 31): 2 nodes run, so --nodes 2 is a no-op and --nodes 3 is refused, untouched.
out=$(cluster/start --nodes 2 2>&1) || fail "cluster/start --nodes 2 on the running 2 nodes failed: $out"
grep -q "^cluster/start: already running (.*cluster_nodes=2)" <<<"$out" || fail "cluster/start --nodes 2 said: $out"
set +e
out=$(cluster/start --nodes 3 2>&1)
status=$?
set -e
[ "$status" -eq 2 ] || fail "cluster/start --nodes 3 on 2 running nodes exited $status (want 2): $out"
grep -q "a 2-node cluster is already running .*stop it first .*cluster/stop, then cluster/start --nodes 3" <<<"$out" \
  || fail "cluster/start --nodes 3 said: $out"
! ip netns list | grep -q "^$DDP_CLUSTER_NAME-node3" || fail "the refused start made a node3"
echo "ok: cluster/start --nodes 2 on 2 running nodes is a no-op, --nodes 3 is refused (exit 2)"

# The wrapper logs each rank's hostname as the trainer sees it (until summary.json has hosts).
cat >"$work/train" <<EOF
#!/bin/sh
echo "\$SLURM_PROCID \$(hostname)" >>"\$DDP_HOSTS_SEEN"
exec "$train" "\$@"
EOF
chmod +x "$work/train"
check_hosts() {
  [ "$(sort -u "$1/hosts-seen" | tr '\n' ' ')" = "0 node1 1 node2 " ] \
    || fail "ranks ran on $(sort -u "$1/hosts-seen" 2>/dev/null | tr '\n' ' '), expected rank 0 on node1, rank 1 on node2"
  python3 - "$1/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["world_size"] == 2, f"world size {s['world_size']}, expected 2"
if "hosts" in s:
    assert sorted(s["hosts"]) == ["node1", "node2"], f"summary hosts {s['hosts']}"
PY
}

set +e
on_head sbatch --wait -N 2 --ntasks-per-node=1 --output="$work/slurm-%j.out" \
  --export=ALL,DDP_RUN_DIR="$work/run",DDP_TRAIN="$work/train",DDP_HOSTS_SEEN="$work/run/hosts-seen" \
  launch/slurm/ddp-train.sbatch --config configs/mnist.yaml train.epochs=2 lr.rule=linear >"$work/sbatch.out" 2>&1
status=$?
set -e
cat "$work/sbatch.out" "$work"/slurm-*.out 2>/dev/null
[ "$status" -eq 0 ] || { tail -n 20 "$work"/run/rank-*.log 2>/dev/null; fail "sbatch -N 2 job exited $status"; }
check_hosts "$work/run"
echo "ok: sbatch -N 2 --ntasks-per-node=1 ran rank 0 on node1 and rank 1 on node2"

# Preemption across nodes: USR1 -> srun -> both ranks -> checkpoint, exit 75 -> requeue -> resume,
# all in the output.dir given on the job's command line (issue 31: it was replaced by runs/slurm-<id>).
setup=(--config configs/mnist.yaml train.epochs=40 optim.momentum=0.9 checkpoint.every_epochs=10 output.progress=false)
timeout 300 launch/mpirun 2 "${setup[@]}" output.dir="$work/reference" >"$work/reference.log" 2>&1 \
  || { cat "$work/reference.log"; fail "the reference run failed"; }
reference=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$work/reference/summary.json")
job=$(on_head sbatch --parsable -N 2 --ntasks-per-node=1 --output="$work/preempt-%j.out" \
  --export=ALL,DDP_TRAIN="$work/train",DDP_HOSTS_SEEN="$work/preempt/hosts-seen" \
  launch/slurm/ddp-train.sbatch "${setup[@]}" output.dir="$work/preempt")
job_state() { on_head scontrol show job "$job" | grep -o "JobState=[A-Z_]*" | cut -d= -f2; }
restarts() { on_head scontrol show job "$job" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p'; }
for _ in $(seq 1 300); do [ -s "$work/preempt/metrics.jsonl" ] && break; sleep 0.2; done
[ -s "$work/preempt/metrics.jsonl" ] || { cat "$work"/preempt-*.out; fail "job $job never started training"; }
on_head scancel --signal=USR1 --batch "$job"
for _ in $(seq 1 100); do [ "$(restarts)" = 1 ] && break; sleep 0.3; done
[ "$(restarts)" = 1 ] || { cat "$work"/preempt-*.out; fail "job $job was not requeued"; }
# Slurm holds a requeued job back for about two minutes; once the old step's ranks are gone
# (the nodes share this machine's process table), release it.
for _ in $(seq 1 100); do pgrep -f "$work/preempt" >/dev/null || break; sleep 0.2; done
sleep 3
on_head scontrol update JobId="$job" StartTime=now
for _ in $(seq 1 600); do
  case "$(job_state)" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL) break ;; esac
  sleep 0.5
done
cat "$work"/preempt-*.out
[ "$(job_state)" = COMPLETED ] || { tail -n 20 "$work/preempt/rank-0.log"; fail "preempted job ended $(job_state)"; }
grep -q "requeueing job $job" "$work"/preempt-*.out || fail "the batch script did not requeue"
grep -q "resuming from .*ckpt-" "$work/preempt/rank-0.log" || fail "the requeued job did not resume"
check_hosts "$work/preempt"
grep -q "run dir $work/preempt, restart 1" "$work"/preempt-*.out || fail "the requeued job did not run in output.dir"
[ -s "$work/preempt/dry-run.txt" ] || fail "no dry-run.txt in output.dir"
[ ! -e "runs/slurm-$job" ] || fail "the job wrote runs/slurm-$job in the checkout despite output.dir"
crc=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$work/preempt/summary.json")
[ "$crc" = "$reference" ] || fail "preempted+resumed parameters $crc differ from the uninterrupted $reference"
echo "ok: the 2-node job was preempted, requeued, resumed and matched the uninterrupted run bitwise ($crc)"
