#!/usr/bin/env bash
# metrics.jsonl and steps.jsonl grow a line at a time: an append the full disk refuses ends
# the job with exit 1 naming the file and the system's reason, instead of being lost in silence,
# and the file ends in a whole line (what the disk took of the refused line is cut off).
source "$(dirname "$0")/lib.sh"
source "$DDP_SOURCE_DIR/tests/common/small_disk.sh"
no_checkpoints=(checkpoint.every_epochs=0 checkpoint.every_steps=0 train.epochs=2)
whole_lines() {  # every line of $1 is JSON, and the file ends in a newline
  python3 -c "
import json, sys
text = open(sys.argv[1]).read()
sys.exit(not (text == '' or text.endswith('\n')) or not all(json.loads(l) for l in text.splitlines()))" "$1"
}

# One free page: config.yaml takes it, the first epoch's line finds none.
small_disk "$work/disk1" 256k
fill_disk "$work/disk1" 4
train 1 "${no_checkpoints[@]}" output.dir="$work/disk1/metrics"
check "a refused metrics line ends the job (exit $rc)" [ "$rc" -eq 1 ]
check "... naming metrics.jsonl and the reason" \
  output_has "error: rank 0: $work/disk1/metrics/metrics.jsonl: cannot append a line: No space left on device; the disk is full"
metrics="$work/disk1/metrics/metrics.jsonl"
check "... which holds no half line ($(wc -c <"$metrics") bytes)" whole_lines "$metrics"

# Two free pages: config.yaml takes one, steps.jsonl (a line per step) fills the other mid-line.
small_disk "$work/disk2" 256k
fill_disk "$work/disk2" 8
train 1 "${no_checkpoints[@]}" metrics.every_steps=1 output.dir="$work/disk2/steps"
steps="$work/disk2/steps/steps.jsonl"
check "a refused step line ends the job (exit $rc)" [ "$rc" -eq 1 ]
check "... naming steps.jsonl and the reason" output_has "error: rank 0: $steps: cannot append a line: No space left on device"
check "... which ends in a whole line ($(wc -l <"$steps") lines, $(wc -c <"$steps") bytes)" whole_lines "$steps"
check "... after the lines that fitted" [ "$(wc -l <"$steps")" -gt 10 ]
finish
