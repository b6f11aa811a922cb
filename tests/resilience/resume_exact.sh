#!/usr/bin/env bash
# A run stopped after any step and resumed with the same world size ends with parameters
# bitwise equal to an uninterrupted run (CRC-32 of every parameter byte). Resuming with
# another world size works when the global batch is kept (virtual ranks) and is refused
# otherwise; a changed experiment is refused; a corrupt newest checkpoint is skipped. The
# per-step metrics (steps.jsonl) of a resumed run are byte for byte the uninterrupted run's.
source "$(dirname "$0")/lib.sh"
# Momentum and weight decay carry optimizer state; warmup makes the lr depend on the step.
setup=(train.epochs=3 optim.momentum=0.9 optim.weight_decay=1e-4 lr.rule=linear lr.warmup_epochs=1
       checkpoint.every_steps=50 checkpoint.keep=5 metrics.every_steps=1)
same_steps() { cmp -s "$work/full/steps.jsonl" "$1/steps.jsonl"; }

train 2 "${setup[@]}" output.dir="$work/full"
check "uninterrupted run" [ "$rc" -eq 0 ]
reference=$(crc_of "$work/full")

# 62 steps per epoch: stop mid-epoch, on an epoch boundary, right after a checkpoint, at step 1.
for stop in 1 37 62 100 150; do
  train 2 "${setup[@]}" output.dir="$work/stop$stop" train.stop_after_steps=$stop
  check "stop after step $stop exits 75 with a checkpoint" [ "$rc" -eq 75 -a -f "$work/stop$stop/checkpoints/ckpt-$(printf %010d $stop).ddpckpt" ]
  train 2 "${setup[@]}" output.dir="$work/stop$stop" --resume
  check "resume after step $stop completes" [ "$rc" -eq 0 ]
  check "resume after step $stop is bitwise equal ($(crc_of "$work/stop$stop") vs $reference)" \
    [ "$(crc_of "$work/stop$stop")" = "$reference" ]
  lines=$(wc -l <"$work/stop$stop/metrics.jsonl")
  check "metrics after resume at $stop hold each epoch once ($lines lines)" [ "$lines" -eq 3 ]
  check "steps.jsonl after resume at $stop is the uninterrupted run's ($(wc -l <"$work/stop$stop/steps.jsonl") lines)" \
    same_steps "$work/stop$stop"
done
check "steps.jsonl has a line per step (186)" [ "$(wc -l <"$work/full/steps.jsonl")" -eq 186 ]

# LARS: its state is SGD's momentum buffers, carried the same way.
lars=(optim.name=lars optim.base_lr=1)
train 2 "${setup[@]}" "${lars[@]}" output.dir="$work/lars"
lars_reference=$(crc_of "$work/lars")
train 2 "${setup[@]}" "${lars[@]}" output.dir="$work/lars-stop" train.stop_after_steps=37
train 2 "${setup[@]}" "${lars[@]}" output.dir="$work/lars-stop" --resume
check "LARS resumed after step 37 is bitwise equal ($(crc_of "$work/lars-stop") vs $lars_reference)" \
  [ "$rc" -eq 0 -a "$(crc_of "$work/lars-stop")" = "$lars_reference" -a "$lars_reference" != "$reference" ]

# Two stops in one run: resume, stop again, resume.
train 2 "${setup[@]}" output.dir="$work/twice" train.stop_after_steps=40
train 2 "${setup[@]}" output.dir="$work/twice" train.stop_after_steps=130 --resume
check "second stop exits 75" [ "$rc" -eq 75 ]
train 2 "${setup[@]}" output.dir="$work/twice" --resume
check "stopped twice, still bitwise equal" [ "$(crc_of "$work/twice")" = "$reference" ]
check "stopped twice, steps.jsonl still has each step once" same_steps "$work/twice"

# Batch norm: the running statistics travel in the checkpoint (local: rank 0's, broadcast to the
# other ranks first) and parameters_crc32 covers them; the test loss reads them.
for bn in local sync; do
  train 2 "${setup[@]}" model.batch_norm=$bn output.dir="$work/bn-$bn-full"
  train 2 "${setup[@]}" model.batch_norm=$bn output.dir="$work/bn-$bn" train.stop_after_steps=37
  train 2 "${setup[@]}" model.batch_norm=$bn output.dir="$work/bn-$bn" --resume
  check "batch_norm=$bn: resumed after step 37, bitwise equal ($(crc_of "$work/bn-$bn") vs $(crc_of "$work/bn-$bn-full"))" \
    [ "$rc" -eq 0 -a "$(crc_of "$work/bn-$bn")" = "$(crc_of "$work/bn-$bn-full")" ]
  check "batch_norm=$bn: and the same final test loss" python3 -c "
import json, sys
a = json.load(open('$work/bn-$bn/summary.json')); b = json.load(open('$work/bn-$bn-full/summary.json'))
sys.exit(not (a['final_test_loss'] == b['final_test_loss'] and a['batch_norm'] == '$bn'))"
done

# The newest checkpoint torn: resume warns, takes the previous one, and is still exact.
train 2 "${setup[@]}" output.dir="$work/torn" train.stop_after_steps=120
newest="$work/torn/checkpoints/ckpt-0000000120.ddpckpt"
truncate -s -100 "$newest"
train 2 "${setup[@]}" output.dir="$work/torn" --resume
check "a corrupt checkpoint is skipped with a warning" output_has "skipping corrupt checkpoint: .*ckpt-0000000120"
check "resume falls back to step 100" output_has "resuming from .*ckpt-0000000100"
check "and is still bitwise equal" [ "$rc" -eq 0 -a "$(crc_of "$work/torn")" = "$reference" ]
check "the corrupt checkpoint past the resumed one is gone" [ ! -e "$newest" ]
check "steps 101-120, logged before the resumed checkpoint was torn, are logged once" same_steps "$work/torn"

# --overwrite starts afresh: the old run's later checkpoints must not be resumed.
train 2 "${setup[@]}" output.dir="$work/torn" train.stop_after_steps=30 --overwrite
train 2 "${setup[@]}" output.dir="$work/torn" --resume
check "after --overwrite, resume continues the new run (step 30)" output_has "resuming from .*ckpt-0000000030"

# Step checkpoints also land on epoch ends (62 steps per epoch).
train 2 "${setup[@]}" output.dir="$work/steps" checkpoint.every_steps=62 checkpoint.every_epochs=0 train.stop_after_steps=100
check "every_steps=62 writes the checkpoint at the end of epoch 1" [ -f "$work/steps/checkpoints/ckpt-0000000062.ddpckpt" ]

# Another world size: allowed when the global batch is kept through virtual ranks.
train 2 "${setup[@]}" output.dir="$work/virtual" train.stop_after_steps=77
train 1 "${setup[@]}" output.dir="$work/virtual" --resume train.virtual_ranks=2
check "2 ranks resumed as 1 rank x 2 virtual completes" [ "$rc" -eq 0 ]
check "the resumed run reports 1 x 2 virtual" python3 -c "
import json, sys; s = json.load(open('$work/virtual/summary.json'))
sys.exit(not (s['world_size'] == 1 and s['virtual_ranks'] == 2 and s['global_batch'] == 128))"
# Same samples, same updates: only the order of floating-point sums differs.
check "and ends where the 2-rank run ends (train loss within 1e-4)" python3 -c "
import json, sys
a = json.load(open('$work/virtual/summary.json')); b = json.load(open('$work/full/summary.json'))
sys.exit(not abs(a['final_train_loss'] - b['final_train_loss']) < 1e-4)"
train 1 "${setup[@]}" output.dir="$work/virtual2" train.stop_after_steps=1 train.virtual_ranks=1
train 2 "${setup[@]}" output.dir="$work/stop37" --resume train.epochs=4
check "more epochs on resume are allowed" [ "$rc" -eq 0 ]
# ... but not where the decay spans the run: under cosine every later step's lr would change.
train 2 "${setup[@]}" lr.decay=cosine output.dir="$work/cosine" train.stop_after_steps=77
train 2 "${setup[@]}" lr.decay=cosine output.dir="$work/cosine" --resume train.epochs=4
check "more epochs on resume under cosine are refused (exit 2)" [ "$rc" -eq 2 ]
check "... naming train.epochs and the decay" \
  output_has "key 'train.epochs' was 3 when the checkpoint was written and is 4 now, but lr.decay=cosine spans the whole run"

# Refused: another global batch, or another experiment.
train 2 "${setup[@]}" output.dir="$work/refuse" train.stop_after_steps=77
train 1 "${setup[@]}" output.dir="$work/refuse" --resume
check "1 rank resuming a 2-rank run is refused with exit 2" [ "$rc" -eq 2 ]
check "... and says why and what to do" output_has "silently change the experiment.*train.virtual_ranks=2"
train 2 "${setup[@]}" output.dir="$work/refuse" --resume optim.base_lr=0.1
check "a changed learning rate is refused naming the key" [ "$rc" -eq 2 ]
check "... naming optim.base_lr" output_has "key 'optim.base_lr' was 0.01 when the checkpoint was written and is 0.1"
train 2 "${setup[@]}" output.dir="$work/refuse" --resume model.batch_norm=local
check "adding batch norm on resume is refused naming model.batch_norm" \
  output_has "key 'model.batch_norm' was none when the checkpoint was written and is local"

# Another training set under the same config (data.dir may move): the positions would not mean the same.
mkdir -p "$work/small"
python3 - "$work/small" <<'PY'
import gzip, struct, sys, os
out = sys.argv[1]
for kind, item in (("images-idx3", 784), ("labels-idx1", 1)):
    for split in ("train", "t10k"):
        raw = gzip.open(f"data/mnist/{split}-{kind}-ubyte.gz").read()
        header = 16 if item == 784 else 8
        if split == "train":
            raw = raw[:4] + struct.pack(">I", 4000) + raw[8:header] + raw[header:header + 4000 * item]
        open(os.path.join(out, f"{split}-{kind}-ubyte"), "wb").write(raw)
PY
train 2 "${setup[@]}" output.dir="$work/refuse" --resume data.dir="$work/small"
check "a different training set is refused" [ "$rc" -eq 2 ]
check "... saying both sizes" output_has "written for a training set of 8000 samples; data.dir now holds 4000"
finish
