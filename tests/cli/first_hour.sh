#!/usr/bin/env bash
# A newcomer's first hour, through launch/mpirun as the README says (issue 23):
# - a run stopped by its step budget resumes from its directory alone (--resume output.dir=DIR),
#   runs to the end and ends bitwise equal to an uninterrupted run; so does --config DIR/config.yaml;
# - a refused resume names the key that differs and a fix that works;
# - --dry-run prints the run's shape and exits 0, or 2 with the error; it writes nothing;
# - exit 75 and an explained exit 2 end without Open MPI's boilerplate, the last line saying what
#   to do next; an unexplained failure keeps Open MPI's report;
# - every script a user runs answers --help with exit 0.
source "$(dirname "$0")/lib.sh"
cd "$DDP_SOURCE_DIR"
export DDP_TRAIN
run=(--config "$cfg" train.epochs=4 optim.momentum=0.9 train.local_batch=4)
mpi() { timeout 120 launch/mpirun 2 "$@" >"$work/out" 2>"$work/err"; }

mpi "${run[@]}" output.dir="$work/whole"
whole=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$work/whole/summary.json")

mpi "${run[@]}" train.stop_after_steps=9 output.dir="$work/j3"
rc=$?
check "a step budget stops the run with exit 75 (got $rc)" [ "$rc" -eq 75 ]
check "... without Open MPI's boilerplate" bash -c "! grep -Eq 'Primary job|MPI_ABORT|Process name|-{20,}' '$work/err'"
check "... its last line saying how to continue" \
  grep -q "^launch/mpirun: the run stopped with a checkpoint (exit 75); continue it with: launch/mpirun 2 --resume output.dir=$work/j3" <(tail -n 1 "$work/err")
check "config.yaml keeps no step budget" grep -q "stop_after_steps: 0" "$work/j3/config.yaml"
mpi --resume output.dir="$work/j3"
rc=$?
check "--resume output.dir=DIR alone runs to the end (exit $rc)" [ "$rc" -eq 0 ]
crc=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$work/j3/summary.json" 2>/dev/null)
check "... bitwise equal to the uninterrupted run ($crc vs $whole)" [ "$crc" = "$whole" ]

mpi "${run[@]}" train.stop_after_steps=9 output.dir="$work/j4"
mpi --config "$work/j4/config.yaml" --resume
rc=$?
check "--config DIR/config.yaml --resume also runs to the end (exit $rc)" [ "$rc" -eq 0 ]

mpi "${run[@]}" train.stop_after_steps=9 output.dir="$work/j5"
mpi --resume output.dir="$work/j5" train.local_batch=8
rc=$?
check "a resume with another local batch is refused (exit $rc)" [ "$rc" -eq 2 ]
check "... naming the key and the fix" grep -q "key 'train.local_batch' was 4 when the checkpoint was written and is 8 now; .*resume with train.local_batch=4" "$work/err"
check "... without Open MPI's boilerplate" bash -c "! grep -Eq 'Primary job|MPI_ABORT|Process name' '$work/err'"
check "... its last line pointing at the reason" grep -q "^launch/mpirun: ddp-train ended with exit 2 for the reason in its line above" <(tail -n 1 "$work/err")
mpi --resume output.dir="$work/j5" train.local_batch=4
check "... and the fix works (exit $?)" [ -f "$work/j5/summary.json" ]

expect 0 "^  steps       8 per epoch x 4 epochs = 32$" -- "$DDP_TRAIN" --dry-run --ranks 2 "${run[@]}" output.dir="$work/dry"
check "a dry run writes nothing" [ ! -e "$work/dry" ]
expect 0 "global batch 8" -- timeout 60 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --dry-run "${run[@]}"
mpi "${run[@]}" train.stop_after_steps=9 output.dir="$work/j6"
expect 0 "resume      from .*ckpt-0000000009.ddpckpt \(step 9 of 32" -- "$DDP_TRAIN" --dry-run --ranks 2 --resume output.dir="$work/j6"
expect 2 "global batch 128 .* exceeds the training set of 64" -- "$DDP_TRAIN" --dry-run --ranks 32 "${run[@]}"
expect 2 "unknown key 'lr.rul'" -- "$DDP_TRAIN" --dry-run "${run[@]}" lr.rul=linear
expect 2 "--ranks only goes with --dry-run" -- "$DDP_TRAIN" --ranks 2 "${run[@]}"
expect 2 "--resume needs the run directory" -- "$DDP_TRAIN" --dry-run --resume
expect 2 "no $work/none/config.yaml there" -- "$DDP_TRAIN" --dry-run --resume output.dir="$work/none"

DDP_TRAIN=/bin/false timeout 60 launch/mpirun 2 >"$work/out" 2>"$work/err"
check "an unexplained failure keeps Open MPI's report" grep -q "Primary job" "$work/err"

for script in launch/* launch/slurm/ddp-train.sbatch cluster/*; do
  [ -x "$script" ] && [ -f "$script" ] || continue
  out=$(timeout 20 "$script" --help 2>&1)
  check "$script --help exits 0 and says how to use it" bash -c "[ $? -eq 0 ] && grep -qiE 'usage|^ *(launch|cluster|sbatch|ddp)' <<<\"\$0\"" "$out"
done
finish
