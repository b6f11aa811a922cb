#!/usr/bin/env bash
# train.check_every=N reads the ranks' agreed NaN/stop flags every N steps only (on a GPU
# each read makes the host wait). It must not change what is trained: bitwise equal to
# checking every step; a step budget still stops at its exact step; and a NaN between two
# checks sends the run back to the last checked state, parameters and momentum both. The
# steps.jsonl lines wait for the check that vouches for them, and go with a rollback.
source "$(dirname "$0")/lib.sh"
setup=(train.epochs=2 optim.momentum=0.9 metrics.every_steps=1)
same_steps() { cmp -s "$1/steps.jsonl" "$2/steps.jsonl"; }

train 2 "${setup[@]}" train.check_every=1 output.dir="$work/every"
train 2 "${setup[@]}" train.check_every=7 output.dir="$work/seventh"
check "checking every 7th step trains bitwise the same as every step" [ "$(crc_of "$work/every")" = "$(crc_of "$work/seventh")" ]
check "and logs the same steps.jsonl" same_steps "$work/every" "$work/seventh"

train 2 "${setup[@]}" train.check_every=7 train.stop_after_steps=10 output.dir="$work/budget"
check "a step budget between two checks stops at its step" output_has "stopped at step 10 .*ckpt-0000000010"
train 2 "${setup[@]}" train.check_every=7 output.dir="$work/budget" --resume
check "and resumes to the same end" [ "$(crc_of "$work/budget")" = "$(crc_of "$work/every")" ]
check "with the same steps.jsonl" same_steps "$work/budget" "$work/every"

# lr 1e6 with momentum: checked every step, the update of step 4 is the first refused.
diverge=(train.epochs=2 optim.momentum=0.9 optim.base_lr=1e6 metrics.every_steps=1)
train 2 "${diverge[@]}" train.check_every=1 output.dir="$work/nan1"
check "checked every step, the NaN is caught at step 4" output_has "non-finite loss or gradient at step 4 on some rank"
train 2 "${diverge[@]}" train.check_every=3 output.dir="$work/nan3"
check "checked every 3rd step, it is reported at the next check, with the range" \
  output_has "non-finite loss or gradient in steps 3\.\.5 \(flags are read every 3 steps: train.check_every\) on some rank; the last good state \(step 3\) is in .*ckpt-0000000003"
check "the summary says so" python3 -c "
import json, sys; s = json.load(open('$work/nan3/summary.json'))
sys.exit(not (s['outcome'] == 'nonfinite' and s['nonfinite_step'] == 5 and s['last_good_step'] == 3 and s['check_every'] == 3))"
first_lines() { [ "$(wc -l <"$2/steps.jsonl")" -eq "$1" ] && head -n "$1" "$3/steps.jsonl" | cmp -s - "$2/steps.jsonl"; }
check "steps.jsonl keeps the 3 steps up to the rollback point, as logged when checked every step" \
  first_lines 3 "$work/nan3" "$work/nan1"
# From the rolled-back step 3, checked every step, the run must redo step 3 exactly as
# the first run did (which needs the momentum of step 3) and stop at step 4 in the same state.
train 2 "${diverge[@]}" train.check_every=1 output.dir="$work/nan3" --resume
check "resumed from the rollback point, it is caught at step 4 again" output_has "at step 4 on some rank"
check "in bitwise the state of the run checked every step" [ "$(crc_of "$work/nan3")" = "$(crc_of "$work/nan1")" ]
check "and logs step 4 once more, as that run did" same_steps "$work/nan3" "$work/nan1"
# Back to step 0 of a fresh run: the momentum buffers born since must go, not be kept.
train 2 "${diverge[@]}" train.check_every=10 output.dir="$work/nan10"
check "checked every 10th step, it rolls back to the start" \
  output_has "in steps 0\.\.9 .*the last good state \(step 0\) is in .*ckpt-0000000000"
train 2 "${diverge[@]}" train.check_every=1 output.dir="$work/nan10" --resume
check "and from there reaches bitwise the same step-4 state" [ "$(crc_of "$work/nan10")" = "$(crc_of "$work/nan1")" ]
check "logging steps 1-4 once: the rollback dropped the unchecked lines" same_steps "$work/nan10" "$work/nan1"
finish
