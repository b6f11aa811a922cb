#!/usr/bin/env bash
# The reduced planner (configs/plan-smoke.yaml) on the running local cluster (with_cluster.sh starts
# it): benchmarks, the sweep to the fit (the grid, the finer one, each mode), predictions written
# before the runs they predict, those runs, and a report with the fit, each mode's factor, predicted
# against measured, and the plan from 1 to 1024 ranks, each cell naming its mode.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_SLURM_STATE:?}"
cd "$DDP_SOURCE_DIR"
train=${DDP_TRAIN:-$PWD/build/ddp-train}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
launch/plan configs/plan-smoke.yaml --binary "$train" --out "$out" >"$out/plan.log" 2>&1 || { cat "$out/plan.log"; exit 1; }
grep "  compute: " "$out/plan.log" || true  # the bench, one process and two at once
python3 - "$out" <<'PY' || { cat "$out/plan.log"; exit 1; }
import calendar, json, os, re, sys, time
out = sys.argv[1]
runs = json.load(open(os.path.join(out, "runs.json")))
# 6 on the grid, 3 on the finer one, 2 modes x 3 batches, batch 512 on both grids (3), 1 rank alone on a node,
# 2 across the nodes, the recommendation beside half and double its batch and the next-best mode (4).
assert len(runs) == 25 and all(r["status"] == "ok" for r in runs), [(r["name"], r["status"]) for r in runs]
small = [(r["mode"], r["ranks"], r["local_batch"]) for r in runs if r["part"] == "modes" and r["global_batch"] == 64]
assert sorted(small) == [("local:4", 2, 32), ("powersgd:2", 2, 32)], small  # a mode at 64: two ranks of 32
assert {r["part"] for r in runs} == {"sweep", "modes", "one_rank", "nodes", "recommendation"}, {r["part"] for r in runs}
alone = [r for r in runs if r["part"] == "one_rank"]
assert [(r["ranks"], r["global_batch"]) for r in alone] == [(1, 64)], alone
for r in runs:  # each crossing read between evaluations: not after the one that saw it
    assert r["crossing_step"] is None or 0 < r["crossing_step"] <= r["steps_to_target"], r
    # its step split as ddp-train measured it (the report's "where the misses' time went")
    assert 0 < r["compute_seconds"] < r["train_seconds"] and 0 <= r["comm_seconds"] < r["train_seconds"], r
prediction = json.load(open(os.path.join(out, "predictions.json")))["mnist"]
fit = prediction["fit"]
assert fit["batches"] == [64, 128, 256] and fit["s_min"] > 0 and fit["b_crit"] > 0, fit
assert fit["statistic"] == "median" and fit["b_crit_loo"], fit
start = prediction["run_start"]  # a run's start, read from the sweep's evaluations before the predictions
assert start["runs"] >= 6 and start["seconds"] >= 0 and start["compute_steps"] >= 0, start
assert set(prediction["modes"]) == {"powersgd:2", "local:4"}, prediction["modes"]
recommended = prediction["recommended"]["1000"]
assert recommended["mode"] in ("none", "powersgd:2", "local:4"), recommended
written = calendar.timegm(time.strptime(prediction["written_at"], "%Y-%m-%d %H:%M:%S UTC"))
later = [r for r in runs if r["part"] in ("one_rank", "nodes", "recommendation") or (r["part"] == "sweep" and r["global_batch"] > 256)]
assert later and all(r["name"] in prediction["runs"] for r in later), "a later run was not predicted"
for r in later:  # each predicted run ended after the predictions were written
    end = os.path.getmtime(os.path.join(out, "runs", r["name"], "summary.json"))
    assert end >= written, f"{r['name']} ended before its prediction"
level = prediction["compute_level"]  # the machine between the sweep's three phases, on 1 and on 2 processes
assert set(level) == {"1", "2"} and all(v["probes"] == 3 and v["factor"] > 0 for v in level.values()), level
assert all(p["at"] <= prediction["written_at"] for p in prediction["sweep_probes"]), "a sweep probe after the predictions"
probed = prediction["probed"]  # each later run predicted again after a probe made before it ran
assert all(r["name"] in probed for r in later), "a later run was not probed"
for r in later:
    at = calendar.timegm(time.strptime(probed[r["name"]]["probed_at"], "%Y-%m-%d %H:%M:%S UTC"))
    assert os.path.getmtime(os.path.join(out, "runs", r["name"], "summary.json")) >= at, f"{r['name']} ended before its probe"
    assert probed[r["name"]]["probe_factor"] > 0 and probed[r["name"]]["seconds"] > 0, probed[r["name"]]
bench = json.load(open(os.path.join(out, "bench.json")))
assert bench["probe"]["seconds"] > 0 and bench["compute"]["after_eval"] >= 0, (bench["probe"], bench["compute"])
assert bench["compute"]["per_sample"] > 0 and "local cluster, tbf 1000 Mbit/s" in bench["networks"], bench.keys()
shared = bench["compute_by_processes"]["2"]  # max_real_ranks at once, at every bench local batch
assert [b for b, _ in shared["points"]] == [b for b, _ in bench["compute"]["points"]], shared
assert all(t > 0 for _, t in shared["points"]) and len(shared["wait_points"]) == len(shared["points"]), shared
assert bench["probe"]["by_processes"]["2"] > 0, bench["probe"]
seen = bench["machine"]  # what else kept the cores busy around the compute bench, and the report says it
assert {"before", "during", "after"} <= seen.keys() and "quiet" in seen["before"] and seen["before"]["cores"] >= 1, seen
assert seen["tries"] >= 1 and seen["during"]["busy_cores"] >= 0, seen
assert "cores busy just before the compute bench" in open(os.path.join(out, "report.md")).read()
assert "during the bench's part on this host" in open(os.path.join(out, "report.md")).read()
assert bench["networks"]["local cluster, tbf 1000 Mbit/s"]["burst_bytes"] == 500000, "not cluster/link's 4 ms bucket"
paused = bench["evaluations"]  # each dataset's evaluation pauses its runs (a capped link's bucket refills)
assert paused["processes"] == 2 and 0 < paused["pause_seconds"]["mnist"] < 1, paused
assert len(paused["after_eval_pairs"]["mnist"]) == 6, paused  # pairs of epochs, back to back
assert abs(prediction["eval_work"] - 2 * paused["pause_seconds"]["mnist"]) < 1e-12, prediction["eval_work"]
assert "Each evaluation pauses the training" in open(os.path.join(out, "report.md")).read()
report = open(os.path.join(out, "report.md")).read()
for part in ("McCandlish et al.'s model fitted", "predicted (before the run) against measured", "The planner's recommendation",
             "Each mode's steps against", "(model output, not measured)", "| network | 1 | 2 | 4 |",
             "## The throughput model", "## Targets", "| probed time |"):
    assert part in report, f"the report lacks '{part}'"
cells = re.findall(r"\| (\d+), (none|powersgd r2|local SGD H=4): [\d.e+-]+ s", report)
assert cells and {mode for _, mode in cells} >= {"none"}, "the plan's cells name no mode"
for png in ("time_to_target_vs_ranks_mnist.png", "steps_vs_samples_mnist.png"):
    assert open(os.path.join(out, png), "rb").read(8) == b"\x89PNG\r\n\x1a\n", png
print(f"ok: plan smoke: fit S_min {fit['s_min']:.1f}, B_crit {fit['b_crit']:.0f}; {len(later)} runs predicted before they ran; "
      f"recommended at 1 Gbit/s: {recommended['mode']}, local batch {recommended['local_batch']}")
PY
# --reuse after every run has run, as it is: the same choices, though the seconds measured again move with
# the machine, so it does not say it predicts otherwise.
launch/plan configs/plan-smoke.yaml --binary "$train" --out "$out" --reuse >"$out/reuse-same.log" 2>&1 \
  || { cat "$out/reuse-same.log"; exit 1; }
! grep -q "predicts otherwise" "$out/reuse-same.log" \
  || { cat "$out/reuse-same.log"; echo "FAIL: --reuse said it predicts otherwise where nothing it chooses changed"; exit 1; }
# --reuse after every run has run: the predictions written before them stand, even where this launch/plan
# would now predict otherwise (here a fit edited by hand), and nothing runs again.
python3 - "$out/predictions.json" <<'PY'
import json, sys
predictions = json.load(open(sys.argv[1]))
predictions["mnist"]["fit"]["s_min"] = 12345.0
json.dump(predictions, open(sys.argv[1], "w"))
PY
written=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mnist"]["written_at"])' "$out/predictions.json")
launch/plan configs/plan-smoke.yaml --binary "$train" --out "$out" --reuse >"$out/reuse.log" 2>&1 || { cat "$out/reuse.log"; exit 1; }
grep -q "^plan: mnist: the predictions written $written stand, as runs they predict have run" "$out/reuse.log" \
  && grep -q "this launch/plan predicts otherwise" "$out/reuse.log" \
  && [ "$(grep -c "reused: an earlier invocation finished" "$out/reuse.log")" = 25 ] \
  && ! grep -q "  probe: " "$out/reuse.log" \
  && python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["mnist"]; assert p["fit"]["s_min"] == 12345.0 and p["written_at"] == sys.argv[2], p["written_at"]' \
       "$out/predictions.json" "$written" \
  || { cat "$out/reuse.log"; echo "FAIL: --reuse wrote the predictions again after their runs"; exit 1; }
echo "ok: --reuse keeps the predictions written before their runs, and probes nothing they would not use"
# One's own cluster: its network's figures (or a ddp-bench-comm output) and compute, planned again
# from the same measurements without running anything.
{ cat configs/plan-smoke.yaml; printf 'networks:\n  - {name: "our 25 GbE", alpha_us: 15, gbit_per_s: 25}\n'
  printf 'computes:\n  - {name: "a faster core", intercept_us: 100, per_sample_us: 2}\n'; } >"$out/own.yaml"
launch/plan "$out/own.yaml" --plan-only --binary "$train" --out "$out" >"$out/replan.log" 2>&1 || { cat "$out/replan.log"; exit 1; }
grep -q "^| our 25 GbE |" "$out/report.md" && grep -q "^Compute: a faster core" "$out/report.md" \
  || { echo "FAIL: --plan-only did not plan for the given network and compute"; exit 1; }
# Their recommendations on stdout: as config keys and as the command that runs them.
grep -q "^plan: mnist on our 25 GbE, compute a faster core: " "$out/replan.log" \
  && grep -q "^  config: .*train.local_batch=.*optim.base_lr=" "$out/replan.log" && grep -q "^  run: .*--config configs/mnist.yaml" "$out/replan.log" \
  || { cat "$out/replan.log"; echo "FAIL: --plan-only printed no recommendation for the given network"; exit 1; }
# Without --out it would write over results/plan-smoke; on a folder without measurements it says how to get them.
launch/plan "$out/own.yaml" --plan-only --binary "$train" >"$out/no-out.log" 2>&1 && { echo "FAIL: --plan-only ran without --out"; exit 1; }
grep -q "needs --out DIR" "$out/no-out.log" || { cat "$out/no-out.log"; exit 1; }
launch/plan "$out/own.yaml" --plan-only --binary "$train" --out "$out/empty" >"$out/empty.log" 2>&1 \
  && { echo "FAIL: --plan-only planned from an empty folder"; exit 1; }
grep -q "make them with launch/plan .* --out $out/empty" "$out/empty.log" || { cat "$out/empty.log"; exit 1; }
echo "ok: --plan-only plans for a network and a compute given by their figures and prints their recommendations"
