#!/usr/bin/env bash
# All ranks must run the same experiment: a rank with another config is refused before
# the first step, naming the rank and the field (MPMD launch gives rank 1 other arguments).
source "$(dirname "$0")/lib.sh"
timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 1 "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  output.dir="$work/a" : -n 1 "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false output.dir="$work/a" \
  optim.base_lr=0.02 >"$work/out" 2>&1
rc=$?
check "a mismatched rank is refused with exit 2" [ "$rc" -eq 2 ]
check "naming rank 1, the key and both values" output_has "rank 1 differs from rank 0 in config key 'optim.base_lr': '0.02' vs '0.01'"
check "before any training" [ ! -s "$work/a/metrics.jsonl" ]
timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 1 "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  output.dir="$work/b" : -n 1 "$DDP_TRAIN" --config configs/fashion-mnist.yaml output.progress=false \
  output.dir="$work/b" >"$work/out" 2>&1
check "another dataset on rank 1 is refused" output_has "rank 1 differs from rank 0 in config key 'data.name'"
finish
