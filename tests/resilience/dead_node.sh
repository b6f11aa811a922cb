#!/usr/bin/env bash
# Every process of one "node" (ranks 2 and 3 of 4) killed with SIGKILL under a launcher
# that lets the others run on (srun without --kill-on-bad-exit, Slurm's default; here
# mpirun with orte_abort_on_non_zero_status=0): only the deadline can end the survivors,
# waiting in a collective. The job must end non-zero within comm.timeout_s + 5 s, naming
# both. (orte_enable_recovery also lets them run, but then mpirun exits 0 whatever happens.)
source "$(dirname "$0")/lib.sh"
marker="deadnode-$$"
deadline=6
timeout 120 "$MPIEXEC" -n 4 $MPIEXEC_FLAGS --mca orte_abort_on_non_zero_status 0 "$DDP_TRAIN" --config configs/mnist.yaml \
  output.progress=false train.epochs=100000 comm.timeout_s=$deadline output.dir="$work/$marker" >"$work/out" 2>&1 &
launcher=$!
wait_for_training "$work/$marker"
victims="$(rank_pid "$marker" 2) $(rank_pid "$marker" 3)"
check "found ranks 2 and 3 ($victims)" [ "$(echo $victims | wc -w)" -eq 2 ]
check "the job is still running before the fault" kill -0 "$launcher"
start=$(date +%s%N)
kill -9 $victims
wait "$launcher"
rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "the job ended non-zero (exit $rc)" [ "$rc" -ne 0 -a "$rc" -ne 124 ]
check "within the deadline + 5 s (${elapsed_ms} ms)" [ "$elapsed_ms" -le $(( (deadline + 5) * 1000 )) ]
check "a survivor named both lost ranks" \
  output_has "^ddp-train: error: rank [01] \([^)]+\): .*did not complete within 6 s \(comm\.timeout_s\): ranks 2 \([^)]+\), 3 \([^)]+\) did not arrive"
finish
