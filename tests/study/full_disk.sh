#!/usr/bin/env bash
# launch/study and launch/claims on a full disk: the write that fails becomes one line naming
# the file and the system's reason, with what to do, and exit 1, not a traceback; no partial
# or temporary file is left.
set -uo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_TRAIN:?}"
cd "$DDP_SOURCE_DIR"
work=$(mktemp -d)
source tests/common/small_disk.sh
failures=0
check() {  # check DESCRIPTION CONDITION...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; cat "$work/err"; failures=$((failures + 1)); fi
}
err_has() { grep -Eq -- "$1" "$work/err"; }
one_line() { [ "$(wc -l <"$work/err")" -eq 1 ]; }

# One run of one epoch: seconds.
cat >"$work/tiny.yaml" <<'YAML'
name: tiny
config: configs/mnist.yaml
overrides: [train.epochs=1]
local_batch: 64
global_batches: [64]
max_real_ranks: 1
seeds: [1]
rules:
  - {name: none, overrides: [lr.rule=none]}
YAML
small_disk "$work/disk" 8m
study="$work/disk/study"
launch/study "$work/tiny.yaml" --out "$study" --binary "$DDP_TRAIN" >"$work/log" 2>"$work/err"
check "the study runs on the small disk" [ -s "$study/runs.csv" -a -s "$study/report.md" ]

# Its run reused, its results written again on a full disk: runs.csv, the first, fails.
rm "$study"/*.csv "$study"/*.png "$study/report.md"
fill_disk "$work/disk"
launch/study "$work/tiny.yaml" --out "$study" --binary "$DDP_TRAIN" --reuse >"$work/log" 2>"$work/err"
rc=$?
check "a study that cannot write its results exits 1 (got $rc)" [ "$rc" -eq 1 ]
check "... in one line naming the file and the reason" \
  err_has "^study: error: $study/runs.csv: No space left on device; the disk is full: free space there or choose another --out"
check "... and nothing else (no traceback)" one_line
check "... leaving no partial runs.csv and no temporary file" [ ! -e "$study/runs.csv" -a "$(temporaries "$study")" -eq 0 ]
check "... and no report" [ ! -e "$study/report.md" ]

# A fresh study on the full disk: its run fails (ddp-train says why in the run's log), then the
# log cannot be written.
launch/study "$work/tiny.yaml" --out "$work/disk/fresh" --binary "$DDP_TRAIN" >"$work/log" 2>"$work/err"
rc=$?
check "a fresh study on a full disk exits 1 (got $rc)" [ "$rc" -eq 1 ]
check "... in one line naming the run's log" err_has "^study: error: $work/disk/fresh/runs/none-b64-s1.log: No space left on device"
check "... and nothing else" one_line
check "... leaving no temporary file (ddp-train's included)" [ "$(temporaries "$work/disk/fresh")" -eq 0 ]

# launch/claims shares the writing: the same line for its first run's log.
launch/claims configs/claims-smoke.yaml --out "$work/disk/claims" --binary "$DDP_TRAIN" >"$work/log" 2>"$work/err"
rc=$?
check "launch/claims on a full disk exits 1 (got $rc)" [ "$rc" -eq 1 ]
check "... in one line naming the log" err_has "^claims: error: $work/disk/claims/runs/[^ ]+\.log: No space left on device; the disk is full"
check "... and nothing else" one_line
check "... leaving no temporary file" [ "$(temporaries "$work/disk/claims")" -eq 0 ]
echo "$failures failed"
[ "$failures" -eq 0 ]
