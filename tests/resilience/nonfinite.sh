#!/usr/bin/env bash
# An lr large enough to diverge: the NaN/Inf is caught on every rank through the
# gradient all-reduce; stop mode ends with a clear message and a checkpoint of the last
# good state, skip mode skips those updates and finishes. A checkpoint written after an
# epoch whose test loss was NaN resumes, and one whose metadata cannot be read is skipped
# for the next older one.
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
# Every step of epoch 2 skipped: it has no training loss (not 0), and no finite test loss.
check "an epoch without an applied step reports no train_loss" python3 -c "
import json, sys; m = [json.loads(l) for l in open('$work/skip/metrics.jsonl')]
sys.exit(not (m[1]['skipped_steps'] - m[0]['skipped_steps'] == 62 and m[1]['train_loss'] is None))"

# Issue 24: the test loss after epoch 1 is NaN; the checkpoint of step 77 holds it.
diverged=(train.epochs=3 optim.momentum=0.9 lr.decay=cosine lr.warmup_epochs=1 model.batch_norm=local
          optim.base_lr=1000 train.on_nonfinite=skip checkpoint.every_steps=70)
train 2 "${diverged[@]}" output.dir="$work/nan" train.stop_after_steps=77
check "the diverged run stops at step 77" [ "$rc" -eq 75 ]
check "its epoch-1 test loss was not finite" python3 -c "
import json, sys; sys.exit(json.loads(open('$work/nan/metrics.jsonl').readline())['test_loss'] is not None)"
train 2 "${diverged[@]}" output.dir="$work/nan" --resume
check "a checkpoint holding a NaN resumes and completes" [ "$rc" -eq 0 ]
check "... from step 77" output_has "resuming from .*ckpt-0000000077"

# An intact checkpoint whose metadata cannot be read (here: no step) is skipped with a warning.
train 2 "${diverged[@]}" output.dir="$work/unusable" train.stop_after_steps=77
python3 - "$work/unusable/checkpoints/ckpt-0000000077.ddpckpt" <<'PY'
import json, struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
size = struct.unpack("<Q", data[8:16])[0]
meta = json.loads(data[16:16 + size])
meta["step"] = None
text = json.dumps(meta).encode()
body = data[:8] + struct.pack("<Q", len(text)) + text + data[16 + size:-4]
open(path, "wb").write(body + struct.pack("<I", zlib.crc32(body)))
PY
train 2 "${diverged[@]}" output.dir="$work/unusable" --resume
check "an unusable checkpoint is skipped naming it and why" \
  output_has "warning: skipping unusable checkpoint .*ckpt-0000000077.ddpckpt: checkpoint metadata incomplete"
check "... for the next older one" output_has "resuming from .*ckpt-0000000070"
check "... and the run completes" [ "$rc" -eq 0 ]
finish
