#!/usr/bin/env bash
# Issue 32: model.name leaves SimpleNN's results where they were. Every training config the
# project ships (configs/mnist.yaml, configs/fashion-mnist.yaml, in full) and the article config
# under each feature that touches the model's parameters must end with the parameters_crc32 that
# the build before model.name existed (de2f9bc) gave; tests/model/simple_nn_crc32.txt holds them.
#   simple_nn_unchanged.sh            check (DDP_TRAIN, as under CTest)
#   simple_nn_unchanged.sh --record   rewrite the file with DDP_TRAIN's crcs (only from that build)
# The kernels are pinned (ATen's AVX2 and OpenBLAS's Haswell ones, one thread) so that the bits
# do not depend on which x86 runs the test; a CPU without AVX2 skips it (exit 77).
set -euo pipefail
: "${DDP_TRAIN:?}" "${DDP_SOURCE_DIR:?}" "${MPIEXEC:=mpiexec}" "${MPIEXEC_FLAGS:=}"
cd "$DDP_SOURCE_DIR"
table=tests/model/simple_nn_crc32.txt
grep -qw avx2 /proc/cpuinfo || { echo "skipped: no AVX2 on this CPU"; exit 77; }
export ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
record=false
[ "${1:-}" = --record ] && record=true

# The cases: ranks, config, overrides. 2 ranks unless one process is the point.
cases() {
  cat <<'CASES'
2 configs/mnist.yaml
2 configs/fashion-mnist.yaml
2 configs/mnist.yaml train.epochs=2 model.batch_norm=local
2 configs/mnist.yaml train.epochs=2 model.batch_norm=sync
2 configs/mnist.yaml train.epochs=2 optim.name=lars optim.base_lr=0.5
2 configs/mnist.yaml train.epochs=2 lr.rule=adascale
2 configs/mnist.yaml train.epochs=2 comm.compression=fp16
2 configs/mnist.yaml train.epochs=2 comm.compression=powersgd comm.compression_start_step=10
2 configs/mnist.yaml train.epochs=2 comm.local_sgd_period=4
1 configs/mnist.yaml train.epochs=2 train.virtual_ranks=2 optim.momentum=0.9 lr.decay=cosine lr.warmup_epochs=1
CASES
}

failures=0
n=0
: >"$work/table"
while read -r ranks config overrides; do
  n=$((n + 1))
  out="$work/run$n"
  # shellcheck disable=SC2086
  timeout 300 "$MPIEXEC" -n "$ranks" $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$config" $overrides \
    output.dir="$out" output.progress=false </dev/null 2>"$work/log$n" || { cat "$work/log$n"; exit 1; }
  crc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["parameters_crc32"])' "$out/summary.json")
  key=$(echo "$ranks $config $overrides" | sed 's/ *$//')
  echo "$crc $key" >>"$work/table"
  if ! $record; then
    want=$(awk -v key="$key" '!/^#/ { crc = $1; $1 = ""; sub(/^ /, ""); if ($0 == key) print crc }' "$table")
    if [ "$crc" = "$want" ]; then echo "ok: $crc  $key"
    else echo "FAIL: $key ended at $crc, before model.name at '${want:-(not in $table)}'"
      failures=$((failures + 1)); fi
  fi
done < <(cases)
if $record; then
  { echo "# parameters_crc32 ranks config overrides: written by tests/model/simple_nn_unchanged.sh --record"
    echo "# with the build of de2f9bc (before model.name), ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell"
    cat "$work/table"; } >"$table"
  cat "$table"
  exit 0
fi
echo "$failures of $n failed"
[ "$failures" -eq 0 ]
