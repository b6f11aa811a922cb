#!/usr/bin/env bash
# Every field a run writes into summary.json, metrics.jsonl, steps.jsonl and evals.jsonl is named
# (in backticks) in docs/outputs.md, the documentation of the outputs: a field added to the code but not to the
# documentation fails here. Runs cover every file and both outcomes (completed, nonfinite).
source "$(dirname "$0")/lib.sh"
docs=${DDP_OUTPUT_DOCS:-$DDP_SOURCE_DIR/docs/outputs.md}
cd "$DDP_SOURCE_DIR"
"$DDP_TRAIN" --config "$cfg" train.epochs=2 train.virtual_ranks=2 train.local_batch=4 metrics.every_steps=2 \
  metrics.eval_every_steps=3 metrics.target_accuracy=0.05 output.dir="$work/done" >/dev/null 2>&1
check "the completed run succeeded" [ -f "$work/done/summary.json" ]
timeout 120 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config "$cfg" train.epochs=2 optim.base_lr=1e6 \
  output.dir="$work/nan" >/dev/null 2>&1
check "the diverging run wrote a summary" [ -f "$work/nan/summary.json" ]
python3 - "$docs" "$work/done" "$work/nan" <<'PY'
import json, os, re, sys
docs, runs = sys.argv[1], sys.argv[2:]
named = set(re.findall(r"`([a-z0-9_]+)`", open(docs).read()))
missing = []
for run in runs:
    files = {"summary.json": [json.load(open(os.path.join(run, "summary.json")))]}
    for name in ("metrics.jsonl", "steps.jsonl", "evals.jsonl"):
        path = os.path.join(run, name)
        if os.path.exists(path):
            files[name] = [json.loads(line) for line in open(path) if line.strip()]
    for name, records in files.items():
        for record in records:
            missing += [f"{name}: {key}" for key in record if key not in named]
missing = sorted(set(missing))
if missing:
    sys.exit(f"FAIL: fields written but not documented in {docs}: {', '.join(missing)}")
print(f"ok: every field of {len(runs)} runs is named in {os.path.basename(docs)}")
PY
check "every output field is documented" [ $? -eq 0 ]
finish
