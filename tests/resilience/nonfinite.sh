#!/usr/bin/env bash
# An lr large enough to diverge: the NaN/Inf is caught on every rank through the
# gradient all-reduce; stop mode ends with a clear message and a checkpoint of the last
# good state, skip mode skips those updates and finishes.
source "$(dirname "$0")/lib.sh"
train 2 train.epochs=2 optim.base_lr=1e6 output.dir="$work/stop"
check "stop mode exits 1" [ "$rc" -eq 1 ]
check "with a message saying what and what to do" output_has "non-finite loss or gradient at step [0-9]+ on some rank; the last good state \(step [0-9]+\) is in .*ckpt-.*lower optim.base_lr or set train.on_nonfinite=skip"
check "the last good state is finite" python3 -c "
import json, sys; s = json.load(open('$work/stop/summary.json'))
sys.exit(not (s['outcome'] == 'nonfinite' and s['nonfinite_step'] >= 0))"
ls "$work/stop/checkpoints/"ckpt-*.ddpckpt >/dev/null 2>&1
check "a checkpoint was written" [ $? -eq 0 ]
train 2 train.epochs=2 optim.base_lr=1e6 train.on_nonfinite=skip output.dir="$work/skip"
check "skip mode completes" [ "$rc" -eq 0 ]
check "and counts the skipped steps" python3 -c "
import json, sys; s = json.load(open('$work/skip/summary.json'))
sys.exit(not (s['outcome'] == 'completed' and s['skipped_steps'] > 0))"
finish
