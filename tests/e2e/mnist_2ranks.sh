#!/usr/bin/env bash
# End to end: 2 ranks, the article config with the linear rule, 10 epochs on the
# prepared MNIST must reach >= 85% test accuracy and leave metrics and summary behind.
set -euo pipefail
: "${DDP_TRAIN:?}" "${DDP_SOURCE_DIR:?}" "${MPIEXEC:=mpiexec}" "${MPIEXEC_FLAGS:=}"
cd "$DDP_SOURCE_DIR"
if [ ! -f data/mnist/train-images-idx3-ubyte.gz ]; then
  echo "data/mnist missing: run launch/prepare-data first" >&2
  exit 1
fi
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
timeout 300 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml lr.rule=linear train.epochs=10 \
  output.dir="$run/out" output.progress=false
python3 - "$run/out" <<'PY'
import json, os, sys
out = sys.argv[1]
for name in ("config.yaml", "metrics.jsonl", "summary.json"):
    assert os.path.isfile(os.path.join(out, name)), f"{name} missing from the run directory"
lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
assert len(lines) == 10, f"expected 10 epochs of metrics, got {len(lines)}"
for key in ("epoch", "step", "lr", "train_loss", "test_loss", "test_acc", "samples_per_second",
            "compute_seconds", "comm_seconds"):
    assert key in lines[-1], f"metrics.jsonl lacks {key}"
s = json.load(open(os.path.join(out, "summary.json")))
assert s["world_size"] == 2 and s["local_batch"] == 64 and s["global_batch"] == 128, s
assert s["lr_rule"] == "linear" and abs(s["peak_lr"] - 0.02) < 1e-12, s
assert lines[-1]["test_acc"] == s["final_test_accuracy"]
print(f"final test accuracy {s['final_test_accuracy']:.4f} (need >= 0.85)")
assert s["final_test_accuracy"] >= 0.85
PY
