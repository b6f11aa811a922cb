# Helpers for the resilience tests: the real binary under mpirun on the prepared MNIST.
set -uo pipefail
: "${DDP_TRAIN:?}" "${DDP_SOURCE_DIR:?}" "${MPIEXEC:=mpiexec}" "${MPIEXEC_FLAGS:=}"
cd "$DDP_SOURCE_DIR"
[ -f data/mnist/train-images-idx3-ubyte.gz ] || { echo "data/mnist missing: run launch/prepare-data" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# train NRANKS ARGS...: runs ddp-train, output in $work/out, exit code in $rc.
train() {
  local ranks=$1
  shift
  timeout 300 "$MPIEXEC" -n "$ranks" $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false "$@" \
    >"$work/out" 2>&1
  rc=$?
}
check() {  # check DESCRIPTION CONDITION...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; cat "$work/out"; failures=$((failures + 1)); fi
}
output_has() { grep -Eq -- "$1" "$work/out"; }
crc_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parameters_crc32'])" "$1/summary.json"; }
finish() {
  echo "$failures failed"
  [ "$failures" -eq 0 ]
}
# rank_pid MARKER RANK: the pid of the ddp-train process of that rank whose command line has MARKER.
rank_pid() {
  local pid
  for pid in $(pgrep -f "ddp-train.*$1"); do
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$pid"; return; }
  done
}
# wait_for_training RUN_DIR: until the run has written metrics (set-up is over), at most 60 s.
wait_for_training() {
  for _ in $(seq 1 300); do
    [ -s "$1/metrics.jsonl" ] && return
    sleep 0.2
  done
}
