#!/usr/bin/env bash
# A start that fails leaves nothing behind that blocks its corrected rerun: every check
# runs before the run directory is made. What a run has measured or saved is still
# protected: a directory with an epoch's metrics or a checkpoint needs --overwrite.
source "$(dirname "$0")/lib.sh"
run() { timeout 120 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" "$@"; }

# Checks that fail after the config is read: the data's size, the backend, the warmup.
dir="$work/run"
expect 2 "global batch 128 .* exceeds the training set of 64" -- run train.local_batch=64 output.dir="$dir"
check "a too-large batch created no run directory" [ ! -e "$dir" ]
expect 2 "nccl needs the model on CUDA" -- run comm.backend=nccl output.dir="$dir"
check "NCCL on a CPU device created no run directory" [ ! -e "$dir" ]
expect 2 "lr.warmup_steps: a warmup of 9 steps is longer than the whole run \(1 epochs x 4 steps = 4 steps\)" -- \
  run lr.warmup_steps=9 output.dir="$dir"
check "a warmup longer than the run created no run directory" [ ! -e "$dir" ]
expect 0 "final test accuracy" -- run output.dir="$dir"

# An empty metrics file and a config (what a start killed before its first epoch leaves)
# hold no results: the rerun goes ahead.
mkdir -p "$work/empty" && : >"$work/empty/metrics.jsonl" && cp "$cfg" "$work/empty/config.yaml"
expect 0 "final test accuracy" -- run output.dir="$work/empty"

# A run stopped in its first epoch has only a checkpoint: a fresh start there is refused,
# --resume continues it.
expect 75 "stopped at step 2" -- run output.dir="$work/stopped" train.stop_after_steps=2 checkpoint.every_steps=1
expect 2 "stopped already holds a run's results; pass --overwrite" -- run output.dir="$work/stopped"
expect 0 "final test accuracy" -- run output.dir="$work/stopped" --resume
finish
