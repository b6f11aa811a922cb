#!/usr/bin/env bash
# A full disk, as a new user met it: the run directory on a 1.2 MB tmpfs, where the third
# checkpoint does not fit. The job ends with exit 1 naming the checkpoint, the system's reason
# and what to do, and leaves no temporary file; a resume first removes what a crash left (a
# .tmp holding the space it needs); with room back, --resume continues from the newest intact
# checkpoint and ends bitwise equal to an uninterrupted run. A fresh start removes a crash's
# temporary files too, and nothing else.
source "$(dirname "$0")/lib.sh"
source "$DDP_SOURCE_DIR/tests/common/small_disk.sh"
setup=(train.epochs=6)  # 1 rank: 125 steps per epoch, a checkpoint (413 KB) after each
small_disk "$work/disk" 1200k

train 1 "${setup[@]}" output.dir="$work/full"
check "uninterrupted run" [ "$rc" -eq 0 ]
reference=$(crc_of "$work/full")

run="$work/disk/run"
checkpoints="$run/checkpoints"
train 1 "${setup[@]}" output.dir="$run"
check "the third checkpoint does not fit: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "... naming the checkpoint and the system's reason" \
  output_has "^ddp-train: error: rank 0: $checkpoints/ckpt-0000000375.ddpckpt: cannot write: No space left on device"
check "... and what to do" output_has "the disk is full: free space on it.*checkpoint.keep.*checkpoint.dir.*--resume"
check "no temporary file is left behind ($(temporaries "$run"))" [ "$(temporaries "$run")" -eq 0 ]
check "the two checkpoints before it are there" \
  [ -f "$checkpoints/ckpt-0000000125.ddpckpt" -a -f "$checkpoints/ckpt-0000000250.ddpckpt" ]

# What a crash mid-write leaves: temporary files, here one holding all the space there is.
echo "half a config" >"$run/config.yaml.tmp"
head -c 2M /dev/zero >"$checkpoints/ckpt-0000000375.ddpckpt.tmp" 2>/dev/null
train 1 "${setup[@]}" output.dir="$run" --resume
check "resume removes the crash's checkpoint.tmp" \
  output_has "removed $checkpoints/ckpt-0000000375.ddpckpt.tmp, left by an interrupted write"
check "... and its config.yaml.tmp" output_has "removed $run/config.yaml.tmp"
check "... continues from the newest checkpoint" output_has "resuming from $checkpoints/ckpt-0000000250.ddpckpt"
check "... until the disk is full again at the same checkpoint (exit $rc)" [ "$rc" -eq 1 ]
check "... said the same way" output_has "ckpt-0000000375.ddpckpt: cannot write: No space left on device"

# Room again (as if the user freed space); another crash's leftover on the way.
mount -o remount,size=8m "$work/disk"
echo '{"epoch": 3, "tor' >"$run/metrics.jsonl.tmp"
train 1 "${setup[@]}" output.dir="$run" --resume
check "with room, --resume completes (exit $rc)" [ "$rc" -eq 0 ]
check "... from the newest intact checkpoint" output_has "resuming from $checkpoints/ckpt-0000000250.ddpckpt"
check "... bitwise equal to the uninterrupted run ($(crc_of "$run") vs $reference)" [ "$(crc_of "$run")" = "$reference" ]
check "... with each epoch in metrics.jsonl once" [ "$(wc -l <"$run/metrics.jsonl")" -eq 6 ]
check "... and no temporary file left" [ "$(temporaries "$run")" -eq 0 ]

# A fresh start after a crash in its first write: the leftovers go, a file of the user's stays.
fresh="$work/disk/fresh"
mkdir -p "$fresh/checkpoints"
echo "half a config" >"$fresh/config.yaml.tmp"
echo "half a checkpoint" >"$fresh/checkpoints/ckpt-0000000007.ddpckpt.tmp"
echo "the user's" >"$fresh/checkpoints/notes.tmp"
train 1 train.epochs=1 output.dir="$fresh"
check "a fresh start beside a crash's temporary files completes" [ "$rc" -eq 0 ]
check "... having removed them" [ ! -e "$fresh/config.yaml.tmp" -a ! -e "$fresh/checkpoints/ckpt-0000000007.ddpckpt.tmp" ]
check "... and nothing else" [ -f "$fresh/checkpoints/notes.tmp" ]
finish
