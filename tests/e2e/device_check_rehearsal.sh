#!/usr/bin/env bash
# The device check rehearsed here, where there is no GPU (DDP_DEVICE_REHEARSAL=1: stages are
# printed, not run), against the device tool's limits: each part's stage limits add up to well
# under 600 s, at most 8 files come back from $OUT (the summary among them), and an nvcc that is
# not on PATH is found in the CUDA home and put on it.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}"
cd "$DDP_SOURCE_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# A CUDA home with a fake nvcc, and a PATH without any nvcc.
mkdir -p "$work/cuda/bin" "$work/bin"
printf '#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.1"\n' >"$work/cuda/bin/nvcc"
chmod +x "$work/cuda/bin/nvcc"
for tool in bash cat date hostname tee sed grep awk mktemp tar rm mkdir sort head tail ls python3 cmake gcc timeout dirname; do
  ln -sf "$(command -v "$tool")" "$work/bin/$tool"
done
for part in build bench; do
  mkdir -p "$work/out-$part"
  OUT=$work/out-$part DDP_DEVICE_REHEARSAL=1 DDP_CUDA_HOME=$work/cuda PATH=$work/bin \
    bash launch/device-check "$part" >"$work/$part.log" 2>&1 || { cat "$work/$part.log"; fail "$part rehearsal failed"; }
  summary=$work/out-$part/summary-$part.txt
  [ -s "$summary" ] || fail "$part: no summary"
  files=$(find "$work/out-$part" -type f | wc -l)
  [ "$files" -le 8 ] || fail "$part: $files files in \$OUT, the device tool brings back 8"
  total=$(sed -n 's/^stage limits: .* add up to \([0-9]*\) s.*/\1/p' "$summary")
  [ -n "$total" ] && [ "$total" -le 540 ] || fail "$part: stage limits add up to '${total:-?}' s"
  grep -q "^nvcc: $work/cuda/bin/nvcc (CUDA 13.0)" "$summary" || { cat "$summary"; fail "$part: nvcc not found in the CUDA home"; }
  echo "ok: $part: $files files in \$OUT, stage limits $total s, nvcc from the CUDA home"
done
grep -q "bench_train_gpu_check1: rehearsal" "$work/out-bench/summary-bench.txt" || fail "bench's stages were not listed"
grep -q "test_gpu: rehearsal" "$work/out-build/summary-build.txt" || fail "build's stages were not listed"
