#!/usr/bin/env bash
# A rank stopped with SIGSTOP mid-training is alive to Open MPI but never arrives: a stall
# warning names it at a quarter of comm.timeout_s, then the deadline ends the job (exit 1)
# with a line naming it, and mpirun exits, all within the deadline + 5 s.
source "$(dirname "$0")/lib.sh"
marker="stalled-$$"
deadline=6
timeout 120 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  train.epochs=100000 comm.timeout_s=$deadline output.dir="$work/$marker" >"$work/out" 2>&1 &
launcher=$!
wait_for_training "$work/$marker"
victim=$(rank_pid "$marker" 1)
check "found rank 1" [ -n "$victim" ]
check "the job is still running before the fault" kill -0 "$launcher"
trap 'kill -9 $victim 2>/dev/null; rm -rf "$work"' EXIT  # a stopped process must not outlive a failed test
start=$(date +%s%N)
kill -STOP "$victim"
wait "$launcher"
rc=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "the job ended with exit 1 (exit $rc)" [ "$rc" -eq 1 ]
warning="^ddp-train: warning: rank 0 \([^)]+\): [a-z() ]+ #[0-9]+ .*waiting [0-9.]+ s for rank 1 \([^)]+\); the job ends at 6 s"
error="^ddp-train: error: rank 0 \([^)]+\): [a-z() ]+ #[0-9]+ .*did not complete within 6 s \(comm\.timeout_s\): rank 1 \([^)]+\) did not arrive"
check "a stall warning named the stopped rank" output_has "$warning"
check "the deadline error named it" output_has "$error"
first_line() { grep -Enm1 -- "$1" "$work/out" | cut -d: -f1; }
check "the warning came first" [ "$(first_line "$warning")" -lt "$(first_line "$error")" ]
check "mpirun exited within the deadline + 5 s (${elapsed_ms} ms)" [ "$elapsed_ms" -le $(( (deadline + 5) * 1000 )) ]
check "no process of the job is left" [ -z "$(rank_pid "$marker" 1)$(rank_pid "$marker" 0)" ]
finish
