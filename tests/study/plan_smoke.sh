#!/usr/bin/env bash
# The reduced planner (configs/plan-smoke.yaml) on the running local cluster (with_cluster.sh starts
# it): benchmarks, the sweep to the fit, predictions written before the runs they predict, those
# runs, and a report with the fit, predicted against measured, and the plan from 1 to 1024 ranks.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_SLURM_STATE:?}"
cd "$DDP_SOURCE_DIR"
train=${DDP_TRAIN:-$PWD/build/ddp-train}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
launch/plan configs/plan-smoke.yaml --binary "$train" --out "$out" >"$out/plan.log" 2>&1 || { cat "$out/plan.log"; exit 1; }
python3 - "$out" <<'PY' || { cat "$out/plan.log"; exit 1; }
import calendar, json, os, sys, time
out = sys.argv[1]
runs = json.load(open(os.path.join(out, "runs.json")))
assert len(runs) == 13 and all(r["status"] == "ok" for r in runs), [(r["name"], r["status"]) for r in runs]
prediction = json.load(open(os.path.join(out, "predictions.json")))["mnist"]
fit = prediction["fit"]
assert fit["batches"] == [64, 128, 256] and fit["s_min"] > 0 and fit["b_crit"] > 0, fit
written = calendar.timegm(time.strptime(prediction["written_at"], "%Y-%m-%d %H:%M:%S UTC"))
later = [r for r in runs if r["global_batch"] > 256 or r["part"] != "sweep"]
assert later and all(r["name"] in prediction["runs"] for r in later), "a later run was not predicted"
for r in later:  # each predicted run ended after the predictions were written
    end = os.path.getmtime(os.path.join(out, "runs", r["name"], "summary.json"))
    assert end >= written, f"{r['name']} ended before its prediction"
bench = json.load(open(os.path.join(out, "bench.json")))
assert bench["compute"]["per_sample"] > 0 and "local cluster, tbf 1000 Mbit/s" in bench["networks"], bench.keys()
report = open(os.path.join(out, "report.md")).read()
for part in ("McCandlish et al.'s model fitted", "predicted (before the run) against measured", "The planner's recommendation",
             "| network | 1 | 2 | 4 |", "## The throughput model", "## Targets"):
    assert part in report, f"the report lacks '{part}'"
for png in ("time_to_target_vs_ranks_mnist.png", "steps_vs_samples_mnist.png"):
    assert open(os.path.join(out, png), "rb").read(8) == b"\x89PNG\r\n\x1a\n", png
print(f"ok: plan smoke: fit S_min {fit['s_min']:.1f}, B_crit {fit['b_crit']:.0f}; {len(later)} runs predicted before they ran")
PY
# One's own cluster: its network's figures (or a ddp-bench-comm output) and compute, planned again
# from the same measurements without running anything.
{ cat configs/plan-smoke.yaml; printf 'networks:\n  - {name: "our 25 GbE", alpha_us: 15, gbit_per_s: 25}\n'
  printf 'computes:\n  - {name: "a faster core", intercept_us: 100, per_sample_us: 2}\n'; } >"$out/own.yaml"
launch/plan "$out/own.yaml" --plan-only --binary "$train" --out "$out" >"$out/replan.log" 2>&1 || { cat "$out/replan.log"; exit 1; }
grep -q "^| our 25 GbE |" "$out/report.md" && grep -q "^Compute: a faster core" "$out/report.md" \
  || { echo "FAIL: --plan-only did not plan for the given network and compute"; exit 1; }
echo "ok: --plan-only plans for a network and a compute given by their figures"
