#!/usr/bin/env bash
# End to end on the GPU: one rank, the article config, 10 epochs with device=cuda (NCCL
# backend) must reach the accuracy of the same run on the CPU (within 0.01, and >= 0.85);
# and a diverging run on the GPU (flags read every 50 steps there) must stop with the
# NaN's step range and a checkpoint of the state it rolled back to.
# Exits 77 (CTest: skipped) when no GPU is visible or LibTorch has no CUDA.
set -euo pipefail
: "${DDP_TRAIN:?}" "${DDP_SOURCE_DIR:?}" "${MPIEXEC:=mpiexec}" "${MPIEXEC_FLAGS:=}"
cd "$DDP_SOURCE_DIR"
[ -f data/mnist/train-images-idx3-ubyte.gz ] || { echo "data/mnist missing: run launch/prepare-data first" >&2; exit 1; }
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
train() {  # train DEVICE [OVERRIDES...]
  local device=$1
  shift
  timeout 300 "$MPIEXEC" -n 1 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml device="$device" train.epochs=10 \
    output.dir="$run/$device" output.progress=false "$@" >"$run/$device.log" 2>&1
}
if ! train cuda; then
  if grep -q "no GPU is visible or this LibTorch was built without CUDA" "$run/cuda.log"; then
    echo "skipped: no CUDA device visible, or this LibTorch was built without CUDA"
    exit 77
  fi
  cat "$run/cuda.log"
  exit 1
fi
train cpu || { cat "$run/cpu.log"; exit 1; }
python3 - "$run" <<'PY'
import json, sys
gpu, cpu = (json.load(open(f"{sys.argv[1]}/{d}/summary.json")) for d in ("cuda", "cpu"))
assert gpu["device"].startswith("cuda") and gpu["backend"] == "nccl", gpu
print(f"test accuracy: GPU {gpu['final_test_accuracy']:.4f}, CPU {cpu['final_test_accuracy']:.4f}; "
      f"samples/s: GPU {gpu['samples_per_second']:.0f}, CPU {cpu['samples_per_second']:.0f}")
assert gpu["final_test_accuracy"] >= 0.85
assert abs(gpu["final_test_accuracy"] - cpu["final_test_accuracy"]) <= 0.01
PY
rm -rf "$run/cuda"
if train cuda optim.base_lr=1e6 optim.momentum=0.9 train.epochs=2; then
  echo "FAIL: lr 1e6 did not diverge on the GPU"; exit 1
fi
grep -Eq "non-finite loss or gradient in steps [0-9]+\.\.[0-9]+ \(flags are read every 50 steps.*the last good state \(step [0-9]+\) is in .*ckpt-" \
  "$run/cuda.log" || { echo "FAIL: no NaN report with a step range"; cat "$run/cuda.log"; exit 1; }
echo "divergence on the GPU: $(grep -o 'in steps [0-9.]*' "$run/cuda.log"), rolled back and checkpointed"
