#!/usr/bin/env bash
# A rank killed with SIGKILL mid-training ends the whole job non-zero within 30 s, with a
# message: no hang.
source "$(dirname "$0")/lib.sh"
marker="deadrank-$$"
timeout 120 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  train.epochs=100000 output.dir="$work/$marker" >"$work/out" 2>&1 &
launcher=$!
for _ in $(seq 1 50); do
  [ "$(pgrep -f "ddp-train.*$marker" | wc -l)" -ge 2 ] && [ -s "$work/$marker/metrics.jsonl" ] && break
  sleep 0.2
done
victim=$(pgrep -f "ddp-train.*$marker" | grep -v "^$launcher\$" | tail -n1)
check "found a rank to kill" [ -n "$victim" ]
start=$(date +%s)
kill -9 "$victim"
wait "$launcher"
rc=$?
elapsed=$(( $(date +%s) - start ))
check "the job ended non-zero (exit $rc)" [ "$rc" -ne 0 -a "$rc" -ne 124 ]
check "within 30 s (took ${elapsed} s)" [ "$elapsed" -le 30 ]
check "with a message naming the killed rank's fate" output_has "signal 9|Killed|exited on signal"
finish
