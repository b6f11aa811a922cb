#!/usr/bin/env bash
# Starts the real one-node Slurm cluster (cluster/start), submits launch/slurm/ddp-train.sbatch
# with `sbatch --wait` for 2 tasks, and checks the job succeeded and wrote metrics and a
# summary with world size 2. Then preempts a second job (USR1 to the batch script, as
# --signal=B:USR1@60 does), checks that it checkpoints, requeues itself, resumes, and ends
# bitwise equal to an uninterrupted run. Stops the daemons it started, also on failure.
# When Slurm cannot be started this test fails and says why: it never passes silently.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}"
cd "$DDP_SOURCE_DIR"
export DDP_SLURM_STATE=$(mktemp -d /tmp/ddp-slurm-test.XXXXXX)
# Ports of their own, so a cluster started by hand on the defaults does not collide.
export DDP_SLURMCTLD_PORT=${DDP_SLURMCTLD_PORT:-16817} DDP_SLURMD_PORT=${DDP_SLURMD_PORT:-16818}
cleanup() {
  cluster/stop >/dev/null 2>&1 || true
  rm -rf "$DDP_SLURM_STATE" "${run_root:-}"
}
trap cleanup EXIT

if ! start_output=$(cluster/start 2>&1); then
  echo "FAIL: the local Slurm cluster could not be started:" >&2
  echo "$start_output" >&2
  for log in "$DDP_SLURM_STATE"/*.log "$DDP_SLURM_STATE"/munge/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
fi
export SLURM_CONF="$DDP_SLURM_STATE/slurm.conf"
run_root=$(mktemp -d)

set +e
sbatch --wait --ntasks=2 --output="$run_root/slurm-%j.out" --export=ALL,DDP_RUN_DIR="$run_root/run" \
  launch/slurm/ddp-train.sbatch --config configs/mnist.yaml train.epochs=2 lr.rule=linear >"$run_root/sbatch.out" 2>&1
status=$?
set -e
cat "$run_root/sbatch.out" "$run_root"/slurm-*.out 2>/dev/null
job=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$run_root/sbatch.out")
[ -n "$job" ] || { echo "FAIL: sbatch did not submit a job"; exit 1; }
if [ "$status" -ne 0 ]; then
  echo "FAIL: job $job exited $status"
  tail -n 20 "$run_root"/run/rank-*.log 2>/dev/null
  exit 1
fi
for rank in 0 1; do
  [ -f "$run_root/run/rank-$rank.log" ] || { echo "FAIL: no log for rank $rank"; exit 1; }
done
python3 - "$run_root/run" <<'PY'
import json, os, sys
run = sys.argv[1]
lines = open(os.path.join(run, "metrics.jsonl")).read().splitlines()
assert len(lines) == 2, f"expected 2 epochs of metrics, got {len(lines)}"
s = json.load(open(os.path.join(run, "summary.json")))
assert s["world_size"] == 2, f"world size {s['world_size']}, expected 2"
assert s["global_batch"] == 128, s["global_batch"]
print(f"ok: Slurm job ran 2 ranks, final test accuracy {s['final_test_accuracy']:.4f}")
PY

# Preemption: USR1 to the batch shell -> forwarded to the ranks -> checkpoint, exit 75 ->
# scontrol requeue -> the requeued job resumes from the checkpoint.
setup=(--config configs/mnist.yaml train.epochs=100 optim.momentum=0.9 checkpoint.every_epochs=25 output.progress=false)
"${MPIEXEC:-mpiexec}" -n 2 ${MPIEXEC_FLAGS:-} "${DDP_TRAIN:-build/ddp-train}" "${setup[@]}" output.dir="$run_root/reference" >/dev/null 2>&1 \
  || { echo "FAIL: the reference run failed"; exit 1; }
reference=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$run_root/reference/summary.json")
job=$(sbatch --parsable --ntasks=2 --output="$run_root/preempt-%j.out" --export=ALL,DDP_RUN_DIR="$run_root/preempt" \
  launch/slurm/ddp-train.sbatch "${setup[@]}")
job_state() { scontrol show job "$job" | grep -o "JobState=[A-Z_]*" | cut -d= -f2; }
restarts() { scontrol show job "$job" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p'; }
for _ in $(seq 1 100); do [ -s "$run_root/preempt/metrics.jsonl" ] && break; sleep 0.2; done
[ -s "$run_root/preempt/metrics.jsonl" ] || { echo "FAIL: job $job never started training"; cat "$run_root"/preempt-*.out; exit 1; }
scancel --signal=USR1 --batch "$job"
for _ in $(seq 1 100); do [ "$(restarts)" = 1 ] && break; sleep 0.2; done
[ "$(restarts)" = 1 ] || { echo "FAIL: job $job was not requeued"; cat "$run_root"/preempt-*.out; exit 1; }
# Slurm holds a requeued job back for about two minutes, which also lets the old step's
# clean-up finish; wait for that clean-up only, then release the job.
for _ in $(seq 1 100); do pgrep -f "ddp-train.*$run_root/preempt" >/dev/null || break; sleep 0.2; done
sleep 3
scontrol update JobId="$job" StartTime=now
for _ in $(seq 1 300); do
  case "$(job_state)" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL) break ;; esac
  sleep 0.5
done
cat "$run_root"/preempt-*.out
[ "$(job_state)" = COMPLETED ] || { echo "FAIL: preempted job ended $(job_state)"; tail -n 20 "$run_root"/preempt/rank-0.log; exit 1; }
grep -q "requeueing job $job" "$run_root"/preempt-*.out || { echo "FAIL: the batch script did not requeue"; exit 1; }
grep -q "resuming from .*ckpt-" "$run_root/preempt/rank-0.log" || { echo "FAIL: the requeued job did not resume"; exit 1; }
crc=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$run_root/preempt/summary.json")
[ "$crc" = "$reference" ] || { echo "FAIL: preempted+resumed parameters $crc differ from the uninterrupted $reference"; exit 1; }
echo "ok: preempted job checkpointed, requeued, resumed and matched the uninterrupted run bitwise ($crc)"
