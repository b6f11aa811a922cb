#!/usr/bin/env bash
# Every class of bad input ends with one clear line naming the file or key, exit code 2,
# and no core dump; --help and --version exit 0. Runs the real binary, under mpirun
# where ranks matter.
source "$(dirname "$0")/lib.sh"

expect 0 "ddp-train [0-9]" -- "$DDP_TRAIN" --version
expect 0 "lr.rule" -- "$DDP_TRAIN" --help
expect 2 "--config: File does not exist" -- "$DDP_TRAIN" --config "$work/nope.yaml"
# --print-config reads and checks the config only (no data, no MPI): the effective config, or the error.
expect 0 "^  rule: linear$" -- "$DDP_TRAIN" --print-config --config "$cfg" lr.rule=linear data.dir="$work/nowhere"
expect 2 "^ddp-train: error: override 'lr.rule=linaer': key 'lr.rule': expected one of" -- "$DDP_TRAIN" --print-config --config "$cfg" lr.rule=linaer
expect 0 "^\| \`train.epochs\` \| integer in \[1, 100000\] \| \`10\` \|" -- "$DDP_TRAIN" --help-config-markdown
expect 2 "unknown key 'train.epoch'; did you mean 'train.epochs'" -- "$DDP_TRAIN" --config "$cfg" train.epoch=3
expect 2 "'train.local_batch': expected an integer" -- "$DDP_TRAIN" --config "$cfg" train.local_batch=big
expect 2 "key 'train.check_every' is 3 but train.on_nonfinite=skip decides on every step" -- "$DDP_TRAIN" --config "$cfg" train.on_nonfinite=skip train.check_every=3
printf 'train: {epochs: 2\n' >"$work/syntax.yaml"
expect 2 "syntax.yaml:[0-9]+: YAML syntax error" -- "$DDP_TRAIN" --config "$work/syntax.yaml"
expect 2 "missing train-images-idx3-ubyte" -- "$DDP_TRAIN" --config "$cfg" data.dir="$work/empty"
expect 2 "ok.yaml: data.dir is a file, not a directory" -- "$DDP_TRAIN" --config "$cfg" data.dir="$cfg"

# Issue #10: YAML that used to crash the loader or be misread ends as exit 2 naming the file.
printf 'train: &a {epochs: 1, x: *a}\n' >"$work/alias.yaml"
expect 2 "alias.yaml:1: key 'train.x' is an alias of a mapping that contains it" -- "$DDP_TRAIN" --config "$work/alias.yaml"
printf '&doc\ntrain: *doc\n' >"$work/alias-doc.yaml"
expect 2 "alias-doc.yaml:2: key 'train' is an alias of a mapping that contains it" -- "$DDP_TRAIN" --config "$work/alias-doc.yaml"
head -c 5000 /dev/zero | tr '\0' '{' >"$work/deep.yaml"
expect 2 "deep.yaml: YAML nesting is too deep" -- "$DDP_TRAIN" --config "$work/deep.yaml"
printf 'train:\n  epochs: 1\n  epochs: 2\n' >"$work/dup.yaml"
expect 2 "dup.yaml:3: key 'train.epochs' is given twice" -- "$DDP_TRAIN" --config "$work/dup.yaml"
printf 'train: {epochs: 1}\n---\ntrain: {epochs: 2}\n' >"$work/docs.yaml"
expect 2 "docs.yaml:2: a second YAML document starts here" -- "$DDP_TRAIN" --config "$work/docs.yaml"
printf '# nothing here yet\n' >"$work/empty.yaml"
expect 2 "empty.yaml: the config file is empty .* omit --config" -- "$DDP_TRAIN" --config "$work/empty.yaml"
printf 'train: 5\n' >"$work/section.yaml"
expect 2 "section.yaml:1: 'train' is a section and must be a mapping" -- "$DDP_TRAIN" --config "$work/section.yaml"
# Decimal, not octal: 0300000 epochs is out of range, and a local batch of 0100 is 100 (not 64) samples.
expect 2 "'train.epochs': value 300000 is out of range" -- "$DDP_TRAIN" --config "$cfg" train.epochs=0300000
expect 2 "global batch 100 .*exceeds the training set of 64" -- "$DDP_TRAIN" --config "$cfg" train.local_batch=0100
expect 2 "key 'lr.warmup_epochs' is 2 but train.epochs is 1" -- "$DDP_TRAIN" --config "$cfg" lr.warmup_epochs=2
# Step decay counts from step 0: a period no longer than the warmup would skip the scaled peak (8 steps an epoch).
expect 2 "lr.step_every_epochs: a decay every 1 epochs \(8 steps\) comes no later than the end of the warmup \(lr.warmup_epochs 1 = 8 steps\).* the scaled peak 0.02 would never be used" -- "$DDP_TRAIN" --config "$cfg" train.epochs=2 lr.rule=linear lr.base_batch=4 lr.warmup_epochs=1 lr.decay=step lr.step_every_epochs=1
expect 2 "lr.step_every_epochs: .*\(lr.warmup_steps 12 = 12 steps\)" -- "$DDP_TRAIN" --config "$cfg" train.epochs=2 lr.warmup_steps=12 lr.rule=linear lr.base_batch=4 lr.decay=step lr.step_every_epochs=1.5
expect 0 "final test accuracy" -- "$DDP_TRAIN" --config "$cfg" train.epochs=3 lr.rule=linear lr.base_batch=4 lr.warmup_epochs=1 lr.decay=step lr.step_every_epochs=2 output.dir="$work/step-after-warmup"
expect 2 "^ddp-train: error: override 'train.on_nonfinite=skip' and override 'train.check_every=3': " -- "$DDP_TRAIN" train.on_nonfinite=skip train.check_every=3
expect 2 "unknown key 'a.b.c'; the top level has the sections" -- "$DDP_TRAIN" a.b.c=1
expect 2 "lr.rule=adascale takes no warmup" -- "$DDP_TRAIN" --config "$cfg" lr.rule=adascale lr.warmup_epochs=1
expect 2 "adascale measures its gain .* set train.virtual_ranks=2" -- "$DDP_TRAIN" --config "$cfg" lr.rule=adascale lr.base_batch=4
# Batch norm over a single sample normalises it to 0: local needs 2 per rank, sync 2 in the global batch.
expect 2 "'model.batch_norm': expected one of none \| local \| sync, got 'global'" -- "$DDP_TRAIN" --config "$cfg" model.batch_norm=global
expect 2 "key 'train.local_batch' is 1 but model.batch_norm=local" -- "$DDP_TRAIN" --config "$cfg" model.batch_norm=local train.local_batch=1
expect 2 "model.batch_norm: sync normalises .* the global batch is 1" -- "$DDP_TRAIN" --config "$cfg" model.batch_norm=sync train.local_batch=1

mkdir -p "$work/bad" && cp "$work/data"/* "$work/bad/"
printf '\x00\x00\x08\x01\x00\x00\x00\x40' | cat - <(head -c 64 /dev/zero) >"$work/bad/train-images-idx3-ubyte"
expect 2 "train-images-idx3-ubyte: wrong IDX magic" -- "$DDP_TRAIN" --config "$cfg" data.dir="$work/bad"

# Under mpirun: both ranks agree on the failure, one line per failing rank, exit 2, no hang.
expect 2 "error: ranks 0-1: .*unknown key 'optim.lr'" -- timeout 60 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" optim.lr=1
expect 2 "global batch 128 .* exceeds the training set of 64" -- timeout 60 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" train.local_batch=64 output.dir="$work/run0"
# The scaled peak needs the world size: 0.01 x 16/64 at 2 ranks of 8, below a floor the config alone could not refuse.
expect 2 "error: ranks 0-1: lr.min_lr: 0.005 is above the peak lr 0.0025 \(optim.base_lr 0.01 under lr.rule=linear at a global batch of 16\)" -- timeout 60 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" lr.rule=linear lr.decay=cyclic lr.min_lr=0.005

# A finished run's directory is not overwritten without --overwrite.
expect 0 "final test accuracy" -- timeout 120 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" output.dir="$work/run1"
expect 2 "already holds a run's results; pass --overwrite" -- timeout 60 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" output.dir="$work/run1"
expect 0 "final test accuracy" -- timeout 120 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" output.dir="$work/run1" --overwrite

# The scripts around the trainer (issue 31): argument errors end in one line, exit 2, before anything starts.
root=${DDP_SOURCE_DIR:?}
expect 2 "^cluster/link: --mbit needs a positive whole number of Mbit/s, not '0'$" -- "$root/cluster/link" --mbit 0
expect 2 "^cluster/link: --mbit 99999999 is above 100000 \(100 Gbit/s\)" -- "$root/cluster/link" --mbit 99999999
expect 2 "^cluster/start: --link-mbit must be a positive whole number of Mbit/s up to 100000, not '100001'$" -- \
  env DDP_SLURM_STATE="$work/no-cluster" "$root/cluster/start" --link-mbit 100001
for script in cluster/link cluster/start; do
  check "$script --help prints its text and none of its code" \
    bash -c '"$0" --help >"$1" && grep -q "cluster/" "$1" && ! grep -qE "^(set -|here=)" "$1"' "$root/$script" "$work/help"
done
expect 0 "plan YAML, any path" -- "$root/launch/plan" --help
expect 0 "study YAML, any path" -- "$root/launch/slow-links" --help
# The batch script's run directory: output.dir= on the command line, as in the job; DDP_RUN_DIR
# naming another one is refused.
sbatch_check() {  # DDP_RUN_DIR ("": unset) ARGS...
  local env_dir=$1
  shift
  env -u SLURM_JOB_ID -u DDP_RUN_DIR ${env_dir:+"DDP_RUN_DIR=$env_dir"} DDP_ROOT="$root" \
    "$root/launch/slurm/ddp-train.sbatch" --check 2 --config "$cfg" "$@"
}
expect 0 "^  output      $work/sb \(will be created\)$" -- sbatch_check "" output.dir="$work/sb"
expect 0 "^  output      $root/runs/slurm-JOBID " -- sbatch_check ""
expect 0 "^  output      $work/sb/ \(will be created\)$" -- sbatch_check "$work/sb" output.dir="$work/sb/"
expect 2 "^ddp-train.sbatch: output.dir=$work/sb and DDP_RUN_DIR=$work/other name different run directories; give one of them$" -- \
  sbatch_check "$work/other" output.dir="$work/sb"
expect 2 "^ddp-train.sbatch: output.dir= \(empty" -- sbatch_check "" output.dir=
check "--check writes nothing" [ ! -e "$work/sb" ]

finish
