# Helpers for the command-line tests: `expect`, and a tiny valid dataset in $work/data with
# a config $cfg that trains on it, so the input under test is the only thing wrong.
set -uo pipefail
: "${DDP_TRAIN:?}" "${MPIEXEC:=mpiexec}" "${MPIEXEC_FLAGS:=}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# expect CODE PATTERN -- COMMAND...: runs COMMAND, checks exit code and that its output matches PATTERN.
expect() {
  local code=$1 pattern=$2
  shift 3
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -ne "$code" ] || ! grep -Eq -- "$pattern" "$work/out" "$work/err"; then
    echo "FAIL: $* -> exit $got (want $code), output:"; cat "$work/out" "$work/err"; echo "(wanted /$pattern/)"
    failures=$((failures + 1))
  else
    echo "ok: exit $code /$pattern/ <- ${*: -3}"
  fi
  if grep -Eq "core dumped|Segmentation fault|terminate called|^Aborted|Signal:" "$work/err"; then
    echo "FAIL: crash output from $*"; cat "$work/err"; failures=$((failures + 1))
  fi
}

# check DESCRIPTION CONDITION...
check() {
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}

finish() {
  echo "$failures failed"
  [ "$failures" -eq 0 ]
}

mkdir -p "$work/data"
python3 - "$work/data" <<'PY'
import struct, sys, os
d = sys.argv[1]
def w(name, magic, dims, payload):
    with open(os.path.join(d, name), "wb") as f:
        f.write(struct.pack(">I" + "I" * len(dims), magic, *dims) + payload)
for prefix, n in (("train", 64), ("t10k", 16)):
    w(f"{prefix}-images-idx3-ubyte", 0x803, [n, 28, 28], bytes(range(256)) * (n * 784 // 256))
    w(f"{prefix}-labels-idx1-ubyte", 0x801, [n], bytes(i % 10 for i in range(n)))
PY
cfg="$work/ok.yaml"
printf 'data: {dir: %s}\ntrain: {epochs: 1, local_batch: 8}\noutput: {progress: false}\n' "$work/data" >"$cfg"
