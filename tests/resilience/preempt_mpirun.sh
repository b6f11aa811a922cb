#!/usr/bin/env bash
# SIGUSR1 to mpirun (forwarded to every rank, as Slurm's --signal does) makes all ranks
# stop at the same step, write a checkpoint and exit 75; the resumed run ends bitwise
# equal to one never interrupted. A signal that reaches one rank only stops all the same, and
# rank 0 names the rank that received it; a stop with checkpoints off says that nothing was saved.
source "$(dirname "$0")/lib.sh"
setup=(train.epochs=200 optim.momentum=0.9 checkpoint.every_epochs=20)

train 2 "${setup[@]}" output.dir="$work/full"
reference=$(crc_of "$work/full")

timeout 300 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  "${setup[@]}" output.dir="$work/run" >"$work/out" 2>&1 &
launcher=$!
# Signal once both ranks train (their handlers are in place), however slow the start-up.
wait_for_training "$work/run"
pkill -USR1 -P "$launcher" -x "$(basename "$MPIEXEC")"  # mpirun itself, not the timeout wrapper
wait "$launcher"
rc=$?
check "the signalled job exits 75" [ "$rc" -eq 75 ]
check "rank 0 says where it stopped and how to go on" output_has "stopped at step [0-9]+ \(signal 10 on ranks 0,1\); checkpoint .*; continue with --resume"
step=$(sed -n 's/.*stopped at step \([0-9]*\).*/\1/p' "$work/out")
check "the checkpoint of step $step exists" [ -f "$work/run/checkpoints/ckpt-$(printf %010d "$step").ddpckpt" ]
check "no summary for an unfinished run" [ ! -f "$work/run/summary.json" ]
train 2 "${setup[@]}" output.dir="$work/run" --resume
check "the resumed run completes" [ "$rc" -eq 0 ]
check "and is bitwise equal to the uninterrupted one" [ "$(crc_of "$work/run")" = "$reference" ]

# SIGUSR1 to rank 1 alone: the flag reaches rank 0 through the all-reduce, the signal's number does not.
timeout 300 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  "${setup[@]}" output.dir="$work/one" >"$work/out" 2>&1 &
launcher=$!
wait_for_training "$work/one"
kill -USR1 "$(rank_pid "$work/one" 1)"
wait "$launcher"
rc=$?
check "a signal to rank 1 only stops the job with a checkpoint (exit 75)" [ "$rc" -eq 75 ]
check "and rank 0 names the rank that received it" output_has "stopped at step [0-9]+ \(signal 10 on rank 1\); checkpoint "

# Checkpoints off: a stop saves nothing, says so, and does not promise a resume (exit 1, not 75).
train 2 train.epochs=2 checkpoint.every_epochs=0 train.stop_after_steps=30 output.dir="$work/off"
check "a stop with checkpoints off exits 1" [ "$rc" -eq 1 ]
check "saying that nothing was saved" output_has "stopped at step 30 \(train.stop_after_steps=30\) with checkpoints off .*nothing was saved"
train 2 train.epochs=2 checkpoint.every_epochs=0 output.dir="$work/off" --resume
check "--resume there says why it starts from step 0" \
  output_has "warning: --resume: no checkpoint to continue from in .*checkpoint.every_epochs=0 writes none\); starting from step 0"
check "... and trains" [ "$rc" -eq 0 ]
finish
