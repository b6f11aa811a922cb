#!/usr/bin/env bash
# launch/mpirun's output, as a log gets it (`> log 2>&1`, what Slurm's output file and CI get):
# - lines in the order they happened: the effective config, then every epoch line, then the
#   ending (the ending used to come first: it went to stdout, the rest to stderr);
# - progress costs nothing much: launch/mpirun's run with progress on is at most 1.5x slower than
#   plain mpirun's (launch/bench-progress, 2 rounds; its stderr watcher forked a process per
#   line, which made Fashion-MNIST's first epoch 4x slower).
set -euo pipefail
: "${DDP_TRAIN:?}" "${DDP_SOURCE_DIR:?}"
cd "$DDP_SOURCE_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

launch/mpirun 2 --config configs/mnist.yaml train.epochs=4 output.dir="$work/run" >"$work/log" 2>&1
python3 - "$work/log" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
def where(pattern):
    return [i for i, line in enumerate(lines) if re.search(pattern, line)]
config, epochs, final = where(r"^effective config"), where(r"^epoch +\d+/4 "), where(r"^final test accuracy")
assert len(config) == 1 and len(epochs) == 4 and len(final) == 1, "\n".join(lines)
assert config[0] < epochs[0] and epochs == sorted(epochs) and epochs[-1] < final[0], "\n".join(lines)
print(f"ok: the log reads in order (config at line {config[0] + 1}, epochs at {[i + 1 for i in epochs]}, "
      f"the ending at {final[0] + 1})")
PY

out=$(launch/bench-progress --rounds 2 --config configs/fashion-mnist.yaml train.epochs=1)
echo "$out"
ratio=$(echo "$out" | sed -n 's/^RESULT .*launch_vs_plain=\([0-9.]*\).*/\1/p')
[ -n "$ratio" ] || { echo "FAIL: no RESULT line from launch/bench-progress"; exit 1; }
if awk -v r="$ratio" 'BEGIN { exit !(r > 1.5) }'; then
  echo "FAIL: plain mpirun trains ${ratio}x as fast as launch/mpirun with progress on (at most 1.5x)"
  exit 1
fi
echo "ok: plain mpirun / launch/mpirun = $ratio (at most 1.5)"
