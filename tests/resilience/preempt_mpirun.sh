#!/usr/bin/env bash
# SIGUSR1 to mpirun (forwarded to every rank, as Slurm's --signal does) makes all ranks
# stop at the same step, write a checkpoint and exit 75; the resumed run ends bitwise
# equal to one never interrupted.
source "$(dirname "$0")/lib.sh"
setup=(train.epochs=200 optim.momentum=0.9 checkpoint.every_epochs=20)

train 2 "${setup[@]}" output.dir="$work/full"
reference=$(crc_of "$work/full")

timeout 300 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  "${setup[@]}" output.dir="$work/run" >"$work/out" 2>&1 &
launcher=$!
wait_for_training "$work/run"  # the ranks handle SIGUSR1 only once main has started
pkill -USR1 -P "$launcher" -x "$(basename "$MPIEXEC")"  # mpirun itself, not the timeout wrapper
wait "$launcher"
rc=$?
check "the signalled job exits 75" [ "$rc" -eq 75 ]
check "rank 0 says where it stopped and how to go on" output_has "stopped at step [0-9]+ \(signal 10\); checkpoint .*; continue with --resume"
step=$(sed -n 's/.*stopped at step \([0-9]*\).*/\1/p' "$work/out")
check "the checkpoint of step $step exists" [ -f "$work/run/checkpoints/ckpt-$(printf %010d "$step").ddpckpt" ]
check "no summary for an unfinished run" [ ! -f "$work/run/summary.json" ]
train 2 "${setup[@]}" output.dir="$work/run" --resume
check "the resumed run completes" [ "$rc" -eq 0 ]
check "and is bitwise equal to the uninterrupted one" [ "$(crc_of "$work/run")" = "$reference" ]
finish
