#!/usr/bin/env bash
# The reduced launch/claims (configs/claims-smoke.yaml): every experiment runs, and the report
# has its shape: a verdict per claim, a section per claim, every plot, one CSV row per run.
# It checks the shape, not the verdicts (2 epochs, 1 seed cannot judge a claim).
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_TRAIN:?}"
cd "$DDP_SOURCE_DIR"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
launch/claims configs/claims-smoke.yaml --out "$out" --binary "$DDP_TRAIN"
/usr/bin/python3 - "$out" <<'PY'
import csv, os, re, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
# claims-smoke.yaml: 3 lrs + 3 batch runs + 2x2 grid + 2 schedules + 2x2 BN sweep + local/sync, 1 seed, 1 dataset.
assert len(rows) == 18, f"expected 18 runs, got {len(rows)}"
bad = [(r["name"], r["status"]) for r in rows if r["status"] not in ("ok", "diverged")]
assert not bad, f"runs failed: {bad}"
assert {r["claim"] for r in rows} == {"1", "2", "3", "4", "5"}, {r["claim"] for r in rows}
sync = [r for r in rows if r["name"] == "bn-sync-b256"]
assert sync and sync[0]["ranks"] == "2" and sync[0]["virtual_ranks"] == "4", sync
report = open(os.path.join(out, "report.md")).read()
verdicts = re.findall(r"^\| (\d)\. .* \| (holds|holds partly|does not hold here) \|$", report, re.M)
assert [n for n, _ in verdicts] == ["1", "2", "3", "4", "5"], f"verdict table: {verdicts}"
for n in range(1, 6):
    assert f"## Claim {n}:" in report, f"no section for claim {n}"
    assert re.search(rf"## Claim {n}:.*?### mnist: (holds|holds partly|does not hold here)\n\nWhy: ", report, re.S), \
        f"claim {n} has no verdict with a reason"
for png in ("claim1_lr_extremes", "claim2_batch_fluctuation", "lr_batch_grid", "claim4_schedules", "claim5_batchnorm"):
    path = os.path.join(out, f"{png}_mnist.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
assert os.path.getsize(os.path.join(out, "runs", "mnist-c1-lr0.01-s1", "steps.jsonl")) > 0, "claim 1 wrote no steps.jsonl"
print("ok: claims report has the expected shape")
PY
