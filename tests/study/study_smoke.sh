#!/usr/bin/env bash
# The reduced scaling study: checks the report's shape (files, columns, one row per run),
# not its numbers.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_TRAIN:?}"
cd "$DDP_SOURCE_DIR"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
launch/study configs/study-smoke.yaml --out "$out" --binary "$DDP_TRAIN"
/usr/bin/python3 - "$out" <<'PY'
import csv, os, sys
out = sys.argv[1]
for name in ("report.md", "runs.csv", "epochs.csv", "accuracy_vs_batch.png", "loss_curves.png", "throughput.png"):
    path = os.path.join(out, name)
    assert os.path.isfile(path) and os.path.getsize(path) > 0, f"{name} missing or empty"
rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
# configs/study-smoke.yaml: 3 global batches x 2 rules x 1 seed.
assert len(rows) == 6, f"expected 6 runs, got {len(rows)}"
for column in ("rule", "global_batch", "ranks", "virtual_ranks", "seed", "status", "peak_lr", "final_test_accuracy",
               "samples_per_second"):
    assert column in rows[0], f"runs.csv lacks {column}"
assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
shapes = {(int(r["global_batch"]), int(r["ranks"]), int(r["virtual_ranks"])) for r in rows}
assert shapes == {(32, 1, 1), (64, 2, 1), (256, 2, 4)}, shapes
epochs = list(csv.DictReader(open(os.path.join(out, "epochs.csv"))))
assert len(epochs) == 6 * 2, f"expected 12 epoch rows, got {len(epochs)}"
report = open(os.path.join(out, "report.md")).read()
table = [l for l in report.splitlines() if l.startswith("| ") and "±" in l]
assert len(table) == 3, f"expected a table row per global batch, got {len(table)}"
for png in ("accuracy_vs_batch.png", "accuracy_vs_steps.png", "loss_curves.png", "throughput.png"):
    assert open(os.path.join(out, png), "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
print("ok: study report has the expected shape")

# The prediction was written before the sweep's first run ended, from the smallest batch only.
import calendar, json, time
prediction = json.load(open(os.path.join(out, "prediction.json")))
assert prediction["global_batch"] == 32 and prediction["micro_batch"] == 16, prediction
assert all(r["status"] == "ok" and r["b_simple_run"] > 0 for r in prediction["runs"]), prediction["runs"]
written = calendar.timegm(time.strptime(prediction["written_at"], "%Y-%m-%d %H:%M:%S UTC"))
first_sweep_end = min(os.path.getmtime(os.path.join(out, "runs", d, "summary.json"))
                      for d in os.listdir(os.path.join(out, "runs")) if not d.startswith("predict-") and "." not in d)
assert written <= first_sweep_end + 1, "the prediction was written after the sweep began"
assert f"**Predicted critical batch ≈ {prediction['predicted_critical_batch']:.0f}**" in report, "no prediction line"
assert "**Observed: `linear+warmup` first loses more than 2 points at global batch" in report, "no observation"
assert "observed / predicted = " in report, "no ratio"
assert "## Which rule holds where" in report and "| linear+warmup | " in report, "no holds-where table"
assert "## Notes (written by hand, kept in the study config)\n\nSmoke notes: carried into the report." in report, "notes missing"
print("ok: the critical batch was predicted before the sweep and compared after it")
PY
# --reuse keeps every finished run with the same command line, and the prediction's time.
before=$(grep written_at "$out/prediction.json")
launch/study configs/study-smoke.yaml --out "$out" --binary "$DDP_TRAIN" --reuse >"$out/reuse.log"
[ "$(grep -c "reused: an earlier invocation" "$out/reuse.log")" -eq 7 ] || { cat "$out/reuse.log"; echo "FAIL: --reuse did not keep the prediction run and the 6 sweep runs"; exit 1; }
[ "$(grep written_at "$out/prediction.json")" = "$before" ] || { echo "FAIL: --reuse restated the prediction"; exit 1; }
grep -q "; 6 finished by an earlier invocation" "$out/report.md" || { echo "FAIL: the report does not count reused runs"; exit 1; }
echo "ok: --reuse keeps finished runs"
# --jobs 2: two runs at once, each on a core of its own, and every run ends with the parameters
# it has one at a time; --reuse keeps what either way finished.
launch/study configs/study-smoke.yaml --out "$out/jobs" --binary "$DDP_TRAIN" --jobs 2 >"$out/jobs.log"
grep -q "(2 in flight, " "$out/jobs.log" || { cat "$out/jobs.log"; echo "FAIL: --jobs 2 never had 2 runs in flight"; exit 1; }
/usr/bin/python3 - "$out" "$out/jobs" <<'PY'
import json, os, sys
crcs = [{n: json.load(open(os.path.join(o, "runs", n, "summary.json")))["parameters_crc32"]
         for n in os.listdir(os.path.join(o, "runs")) if os.path.isfile(os.path.join(o, "runs", n, "summary.json"))}
        for o in sys.argv[1:]]
assert len(crcs[0]) == 7 and crcs[0] == crcs[1], f"one at a time {crcs[0]}\n--jobs 2 {crcs[1]}"
PY
launch/study configs/study-smoke.yaml --out "$out/jobs" --binary "$DDP_TRAIN" --reuse >"$out/jobs-reuse.log"
[ "$(grep -c "reused: an earlier invocation" "$out/jobs-reuse.log")" -eq 7 ] \
  || { cat "$out/jobs-reuse.log"; echo "FAIL: one at a time did not keep the runs --jobs 2 finished"; exit 1; }
echo "ok: --jobs 2 ends every run with the parameters_crc32 of one at a time, and --reuse keeps them"
# A prediction added to a study whose sweep already ran cannot claim to precede it.
grep -v "^prediction:" configs/study-smoke.yaml >"$out/no-prediction.yaml"
launch/study "$out/no-prediction.yaml" --out "$out/late" --binary "$DDP_TRAIN" >"$out/late.log"
launch/study configs/study-smoke.yaml --out "$out/late" --binary "$DDP_TRAIN" --reuse >"$out/late.log"
# (written_at has whole seconds: the runs of the last second may not count, hence [0-9]+)
grep -Eq "warning: [0-9]+ sweep runs \(reused\) finished before the prediction was written" "$out/late.log" \
  || { cat "$out/late.log"; echo "FAIL: no warning for a prediction written after the sweep"; exit 1; }
grep -Eq "after [0-9]+ sweep runs reused from an earlier invocation had finished: it was not stated before them" \
  "$out/late/report.md" || { echo "FAIL: the report claims a late prediction came first"; exit 1; }
echo "ok: a prediction written after the sweep says so"
# A changed override is a different run: --reuse must not keep it.
sed 's/train.epochs=2/train.epochs=1/' configs/study-smoke.yaml >"$out/changed.yaml"
launch/study "$out/changed.yaml" --out "$out/late" --binary "$DDP_TRAIN" --reuse >"$out/changed.log"
! grep -q "reused:" "$out/changed.log" || { echo "FAIL: --reuse kept runs whose overrides changed"; exit 1; }
echo "ok: --reuse reruns what changed"
# A typo in a rule's override is refused before any run, with ddp-train's own reason.
cat >"$out/typo.yaml" <<'YAML'
name: typo
config: configs/mnist.yaml
overrides: [train.epochs=1]
local_batch: 32
global_batches: [32, 64]
max_real_ranks: 2
seeds: [1, 2]
rules:
  - {name: fine, overrides: [lr.rule=none]}
  - {name: typo, overrides: [lr.rule=linaer]}
YAML
set +e
launch/study "$out/typo.yaml" --out "$out/typo" --binary "$DDP_TRAIN" >"$out/typo.log" 2>&1
status=$?
set -e
[ "$status" -eq 2 ] || { cat "$out/typo.log"; echo "FAIL: a study with a bad rule exited $status, not 2"; exit 1; }
grep -q "study: error: run typo-b32-s1 would fail: ddp-train: error: override 'lr.rule=linaer': key 'lr.rule': expected one of" \
  "$out/typo.log" || { cat "$out/typo.log"; echo "FAIL: the refusal does not give ddp-train's reason"; exit 1; }
[ -z "$(ls "$out/typo/runs" 2>/dev/null)" ] || { echo "FAIL: runs were made before the refusal: $(ls "$out/typo/runs")"; exit 1; }
echo "ok: a bad rule is refused before any run, with the trainer's line"
# A run that fails while it runs (here: past the study's timeout) is reported with the reason and
# the study goes on (exit 1 at the end).
cat >"$out/bad.yaml" <<'YAML'
name: bad
config: configs/mnist.yaml
overrides: [train.epochs=1]
local_batch: 32
global_batches: [32]
max_real_ranks: 1
seeds: [1]
timeout_s: 10
rules:
  - {name: broken, overrides: [train.epochs=400]}
  - {name: fine, overrides: [lr.rule=none]}
  - {name: exploding, overrides: [optim.base_lr=1e6, lr.base_batch=1, optim.momentum=0.9]}
YAML
set +e
launch/study "$out/bad.yaml" --out "$out/bad" --binary "$DDP_TRAIN" >"$out/bad.log" 2>&1
status=$?
set -e
grep -q "FAILED (timeout)" "$out/bad.log" || { cat "$out/bad.log"; echo "FAIL: the broken run was not reported"; exit 1; }
[ "$status" -eq 1 ] || { echo "FAIL: study exit $status with a failed run, expected 1"; exit 1; }
grep -q "^fine,32,1,1,1,ok" "$out/bad/runs.csv" || { echo "FAIL: the study did not continue after a failed run"; exit 1; }
echo "ok: a failed run is reported and the study continues"
grep -q "^exploding,32,1,1,1,diverged" "$out/bad/runs.csv" || { echo "FAIL: a diverging run is not recorded as diverged"; exit 1; }
grep -q "diverged (1)" "$out/bad/report.md" || { echo "FAIL: the report does not show the divergence"; exit 1; }
echo "ok: a diverging run is a result (diverged), not a failure"
