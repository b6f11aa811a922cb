"""launch/plan's report: report.md and plots from the runs, the benchmarks and the predictions that
were written before the runs they predict. Reads only; launch/plan runs and predicts."""
import math
import os
import statistics

from . import planner
from .files import replacing, save_figure
from .stats import mean_std, retried_clause, total_minutes

RANKS = [2 ** k for k in range(11)]  # 1 .. 1024
LOCAL_BATCHES = [2 ** k for k in range(0, 13)]  # 1 .. 4096
WITHIN = 0.25  # predicted time to target within 25% of measured


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def error(predicted, measured):
    return None if predicted is None or not measured else predicted / measured - 1


def percent(e):
    return "–" if e is None else f"{e * 100:+.0f}%"


def rows_of(rows, **where):
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def measured_time(runs):
    """Median seconds and steps to target and step time of the runs (None where none reached it)."""
    reached = [r for r in runs if r["status"] == "ok" and r.get("seconds_to_target") is not None]
    if not reached:
        return None
    return {"seconds": median([r["seconds_to_target"] for r in reached]),
            "steps": median([r["steps_to_target"] for r in reached]),
            "step_seconds": median([r["train_seconds"] / r["steps"] for r in reached if r["steps"]]),
            "reached": len(reached), "runs": len(runs)}


def steps_section(d, rows, prediction, fit_max):
    fit, lrs = prediction["fit"], {int(g): lr for g, lr in prediction["best_lr"].items()}
    lines = [f"### Steps to {d['target_accuracy']:g} test accuracy against the global batch", "",
             "The lr at each batch is the grid's with the fewest steps (median over seeds); the fit used the batches "
             f"up to {fit_max}, and its steps for the larger ones were written to predictions.json before they ran.", "",
             "| global batch | lr (grid) | steps (mean ± std) | predicted | error | samples | B_simple at target |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    sweep = rows_of(rows, dataset=d["name"], part="sweep")
    for g in sorted({r["global_batch"] for r in sweep}):
        best = lrs.get(g)
        if best is None:  # batches past the fit: the lr chosen from their own runs
            best = best_lr_of(sweep, g)
        runs = [r for r in sweep if r["global_batch"] == g and r["lr"] == best and r["steps_to_target"] is not None]
        predicted = planner.predicted_steps(fit["s_min"], fit["b_crit"], g)
        if not runs:
            lines.append(f"| {g} | – | not reached at any lr of the grid | {predicted:,.0f} | – | – | – |")
            continue
        mean, std = mean_std([r["steps_to_target"] for r in runs])
        b_simple = median([r.get("b_simple_at_target") for r in runs])
        tag = "" if g <= fit_max else " (out of the fit)"
        lines.append(f"| {g} | {best:g} | {mean:,.1f} ± {std:,.1f} | {predicted:,.1f}{tag} | {percent(error(predicted, mean))} "
                     f"| {mean * g:,.0f} | {'–' if b_simple is None else f'{b_simple:,.0f}'} |")
    return lines


def best_lr_of(sweep, g):
    candidates = []
    for lr in sorted({r["lr"] for r in sweep if r["global_batch"] == g}):
        steps = [r["steps_to_target"] if r["steps_to_target"] is not None else float("inf")
                 for r in sweep if r["global_batch"] == g and r["lr"] == lr]
        candidates.append((sorted(steps)[len(steps) // 2], lr))
    return min(candidates)[1] if candidates else None


def fit_lines(d, rows, prediction):
    fit = prediction["fit"]
    sweep = rows_of(rows, dataset=d["name"], part="sweep")
    b_simple = median([r.get("b_simple_at_target") for r in sweep if r["status"] == "ok"
                       and r.get("lr") == prediction["best_lr"].get(str(r["global_batch"]))])
    lines = ["", f"McCandlish et al.'s model fitted on batches {fit['batches']}: **S_min = {fit['s_min']:,.1f} steps, "
                 f"E_min = {fit['e_min']:,.0f} samples, B_crit = {fit['b_crit']:,.0f}** (90% bootstrap interval over seeds "
                 f"{fit['b_crit_ci90'][0]:,.0f}–{fit['b_crit_ci90'][1]:,.0f}; S_min {fit['s_min_ci90'][0]:,.1f}–"
                 f"{fit['s_min_ci90'][1]:,.1f}), rms error {fit['rms_log_error'] * 100:.0f}% in steps."]
    if b_simple:
        lines.append(f"The online B_simple where the target was reached (median over the best-lr runs that measure it, "
                     f"global batch 128 and up): **{b_simple:,.0f}**; B_crit / B_simple = "
                     f"**{fit['b_crit'] / b_simple:.2f}** (McCandlish et al. find B_crit ≈ B_noise, of which B_simple "
                     "is an estimate that ignores the Hessian's shape).")
    return lines, b_simple


def adascale_lines(d, rows, prediction, b_simple):
    if not b_simple:
        return []
    fit = prediction["fit"]
    lrs = {int(g): lr for g, lr in prediction["best_lr"].items()}
    sweep = rows_of(rows, dataset=d["name"], part="sweep")
    base = min(r["global_batch"] for r in sweep)
    def steps_at(g):
        lr = lrs.get(g) or best_lr_of(sweep, g)
        v = [r["steps_to_target"] for r in sweep if r["global_batch"] == g and r["lr"] == lr and r["steps_to_target"]]
        return sum(v) / len(v) if v else None
    lines = ["", f"What a step of a larger batch is worth in steps of batch {base} (measured, McCandlish's fit, and "
                 f"AdaScale's gain r from B_simple {b_simple:,.0f}):", "",
             "| global batch | scale | measured S(base)/S(B) | fit (1 + B_crit/base)/(1 + B_crit/B) | AdaScale r |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    s_base = steps_at(base)
    for g in sorted({r["global_batch"] for r in sweep}):
        s = steps_at(g)
        measured = f"{s_base / s:.2f}" if s and s_base else "–"
        model = (1 + fit["b_crit"] / base) / (1 + fit["b_crit"] / g)
        lines.append(f"| {g} | {g // base} | {measured} | {model:.2f} | {planner.adascale_gain(b_simple, base, g):.2f} |")
    return lines


def time_lines(d, rows, prediction):
    runs = prediction["runs"]
    lines = ["", "### Time to target, predicted (before the run) against measured", "",
             "Predicted: the fit's steps × the step time of the throughput model (the benchmarks, not these runs). "
             "Measured: the median over seeds of the runs' training seconds to the target (evaluations left out).", "",
             "| configuration | predicted step | measured step | predicted time | measured time | error | within 25% |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    verdicts = []
    groups = {}
    lrs = {int(g): lr for g, lr in prediction["best_lr"].items()}
    for r in rows_of(rows, dataset=d["name"]):
        if r["part"] == "sweep" and r["lr"] != (lrs.get(r["global_batch"]) or
                                                best_lr_of(rows_of(rows, dataset=d["name"], part="sweep"), r["global_batch"])):
            continue
        key = (r["part"], r["global_batch"], r["mode"], r["link_mbit"])
        groups.setdefault(key, []).append(r)
    for (part, g, mode, mbit), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][3] or 0, kv[0][1], kv[0][2])):
        measured = measured_time(group)
        predicted = median([runs.get(r["name"], {}).get("seconds") for r in group])
        step = median([runs.get(r["name"], {}).get("step_seconds") for r in group])
        where = {"sweep": f"this host, {group[0]['ranks']} process(es), global batch {g}",
                 "nodes": f"2 nodes, {mbit} Mbit/s, {mode}, batch {g}",
                 "recommendation": f"2 nodes, {mbit} Mbit/s, batch {g}{' (recommended)' if group[0].get('recommended') else ''}"}[part]
        if measured is None:
            lines.append(f"| {where} | {step * 1e3:.2f} ms | – | {predicted:.2f} s | not reached | – | – |")
            continue
        e = error(predicted, measured["seconds"])
        ok = abs(e) <= WITHIN
        verdicts.append(ok)
        lines.append(f"| {where} | {step * 1e3:.2f} ms | {measured['step_seconds'] * 1e3:.2f} ms | {predicted:.2f} s | "
                     f"{measured['seconds']:.2f} s | {percent(e)} | {'yes' if ok else '**no**'} |")
    lines += ["", f"Within 25%: {sum(verdicts)} of {len(verdicts)} configurations."]
    return lines, verdicts


def recommendation_lines(d, rows, prediction):
    rec = prediction["recommended"]
    runs = rows_of(rows, dataset=d["name"], part="recommendation")
    if not runs:
        return []
    by_batch = {g: measured_time([r for r in runs if r["global_batch"] == g]) for g in sorted({r["global_batch"] for r in runs})}
    chosen = rec["global_batch"]
    times = {g: m["seconds"] for g, m in by_batch.items() if m}
    lines = ["", f"The planner's recommendation for 2 nodes at the capped link: local batch {rec['local_batch']} "
                 f"(global {chosen}), predicted {rec['seconds']:.2f} s; run beside half and double its batch: " +
             ", ".join(f"batch {g}: {t:.2f} s" for g, t in times.items()) + "."]
    if chosen in times and times:
        soonest = min(times.values())
        ratio = times[chosen] / soonest
        verdict = "the soonest" if ratio <= 1.0 else (f"within {100 * (ratio - 1):.0f}% of the soonest" if ratio <= 1.1
                                                      else f"**{100 * (ratio - 1):.0f}% slower than the soonest (target: within 10%)**")
        lines.append(f"The recommended batch was {verdict}.")
    return lines


def throughput_lines(bench, plan):
    c = bench["compute"]
    lines = ["", "## The throughput model", "",
             f"Compute (ddp-bench-train, one rank of this machine, {bench['measured_at']}): a step of local batch b takes "
             f"{c['intercept'] * 1e6:.0f} µs + {c['per_sample'] * 1e6:.2f} µs × b (points: " +
             ", ".join(f"{b}: {t * 1e6:.0f} µs" for b, t in bench["compute_points"]) + "); a process of v virtual ranks "
             "takes v of them (the optimizer's step counted each time: a slight overestimate).", "",
             "| network | α (per collective step) | bandwidth | where it comes from |", "| --- | ---: | ---: | --- |"]
    for name, net in bench["networks"].items():
        lines.append(f"| {name} | {net['alpha'] * 1e6:.1f} µs | {1 / net['beta'] / 1e6:,.1f} MB/s | "
                     "ddp-bench-comm, 2 ranks, 8 B to 4 MB, ring fit |")
    for p in planner.NETWORK_PRESETS:
        lines.append(f"| {p['name']} | {p['alpha'] * 1e6:.0f} µs | {p['bytes_per_second'] / 1e6:,.0f} MB/s | {p['source']} |")
    for n in plan["networks"]:
        lines.append(f"| {n['name']} | {n['alpha'] * 1e6:.1f} µs | {1 / n['beta'] / 1e6:,.1f} MB/s | {n['source']} |")
    lines += ["", f"Compute presets besides the measured core: {planner.H200_ASSUMED['name']}: "
                  f"{planner.H200_ASSUMED['intercept'] * 1e6:.0f} µs + {planner.H200_ASSUMED['per_sample'] * 1e9:.0f} ns × b "
                  f"({planner.H200_ASSUMED['source']})"] + [
        f"; {c['name']}: {c['intercept'] * 1e6:.0f} µs + {c['per_sample'] * 1e9:.0f} ns × b ({c['source']})"
        for c in plan["computes"]]
    lines += ["", "Compression modes' own arithmetic per step (ddp-bench-comm --compression on this host, less the "
                  "model's transfer time): " + ", ".join(f"{m} {s * 1e6:.0f} µs" for m, s in bench["overhead"].items()) + "."]
    return lines


def compute_presets(bench, plan):
    return [{"name": "this machine's core (measured)", **bench["compute"]}, planner.H200_ASSUMED] + plan["computes"]


def networks(bench, plan):
    nets = [(name, net) for name, net in bench["networks"].items() if name.startswith("local cluster")]
    own = [(n["name"], {"alpha": n["alpha"], "beta": n["beta"]}) for n in plan["networks"]]
    return [(p["name"], planner.preset_network(p)) for p in planner.NETWORK_PRESETS] + nets + own



def recommendation(network, limit, lr, extrapolated, plans):
    """One line per network: the rank count past which doubling stops paying, and what it runs."""
    ranks = limit["ranks"]
    head = (f"- {ranks} rank{'s' if ranks > 1 else ''} on {network}: global batch {limit['global_batch']} "
            f"({limit['local_batch']} a rank), lr {lr:.3g}{' (beyond the measured batches)' if extrapolated else ''}, "
            f"{limit['steps']:,.0f} steps, {limit['seconds']:.3g} s; ")
    if ranks == 1 and len(plans) > 1 and plans[1]["seconds"] >= limit["seconds"]:
        return head + f"a second rank does not pay (2 ranks: {plans[1]['seconds']:.3g} s)"
    return head + (f"beyond {ranks} rank{'s' if ranks > 1 else ''} doubling gains under 10%: statistical efficiency "
                   f"{limit['efficiency']:.2f}")

def plan_lines(d, prediction, bench, size, plan):
    fit = prediction["fit"]
    lrs = {int(g): lr for g, lr in prediction["best_lr"].items()}
    lines = ["", f"### The plan for {d['name']}: the best global batch, its lr and the time to {d['target_accuracy']:g}", ""]
    curves = {}
    for compute in compute_presets(bench, plan):
        lines += [f"Compute: {compute['name']}.", "", "| network | " + " | ".join(str(n) for n in RANKS) + " |",
                  "| --- | " + " | ".join("---:" for _ in RANKS) + " |"]
        recommendations = []
        for name, net in networks(bench, plan):
            plans = [planner.best_configuration((fit["s_min"], fit["b_crit"]), compute, net, n, LOCAL_BATCHES, size)
                     for n in RANKS]
            plans = [p for p in plans if p]
            curves[(compute["name"], name)] = plans
            lines.append(f"| {name} | " + " | ".join(f"{p['global_batch']}: {p['seconds']:.2g} s" for p in plans) + " |")
            limit = planner.scaling_limit(plans)
            lr, extrapolated = planner.interpolated_lr(lrs, limit["global_batch"])
            recommendations.append(recommendation(name, limit, lr, extrapolated, plans))
        lines += ["", "Cells: the global batch with the least predicted time to the target, and that time. Where adding "
                      "ranks stops paying:", ""] + recommendations + [""]
    return lines, curves


def plots(d, rows, prediction, curves, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    presets = sorted({c for c, _ in curves})
    fig, axes = plt.subplots(1, len(presets), figsize=(6.5 * len(presets), 4.8), squeeze=False)
    for ax, compute in zip(axes[0], presets):
        for (c, name), plans in curves.items():
            if c == compute:
                ax.plot([p["ranks"] for p in plans], [p["seconds"] for p in plans], marker=".", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("ranks")
        ax.set_ylabel(f"predicted seconds to {d['target_accuracy']:g}")
        ax.set_title(compute)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    name = f"time_to_target_vs_ranks_{d['name']}.png"
    save_figure(fig, os.path.join(out, name))
    plt.close(fig)
    made.append(name)

    fit = prediction["fit"]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    batches = [2 ** k for k in range(4, 16)]
    ax.plot([planner.predicted_steps(fit["s_min"], fit["b_crit"], b) * b for b in batches],
            [planner.predicted_steps(fit["s_min"], fit["b_crit"], b) for b in batches], label="fit: S = S_min(1 + B_crit/B)")
    sweep = rows_of(rows, dataset=d["name"], part="sweep")
    for g in sorted({r["global_batch"] for r in sweep}):
        lr = prediction["best_lr"].get(str(g)) or best_lr_of(sweep, g)
        pts = [(r["steps_to_target"] * g, r["steps_to_target"]) for r in sweep
               if r["global_batch"] == g and r["lr"] == lr and r["steps_to_target"]]
        if pts:
            ax.scatter(*zip(*pts), s=18, label=f"B = {g}" + ("" if g <= max(fit["batches"]) else " (predicted)"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("samples to target (E)")
    ax.set_ylabel("steps to target (S)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = f"steps_vs_samples_{d['name']}.png"
    save_figure(fig, os.path.join(out, name))
    plt.close(fig)
    made.append(name)
    return made


def write_report(plan, out, rows, bench, predictions, sizes, command_line, date, seconds):
    ok = sum(r["status"] == "ok" for r in rows)
    lines = [f"# Time to accuracy at any scale: {plan['name']}", "",
             f"Made by `{command_line}` on {date} ({ok} of {len(rows)} runs completed{retried_clause(rows)}; "
             f"{seconds / 60:.0f} minutes for this invocation, "
             f"the runs' own training time {total_minutes(rows, 'train_seconds'):.0f} minutes). "
             f"Predictions written at: " + ", ".join(f"{n} {p['written_at']}" for n, p in predictions.items()) +
             " (predictions.json), each before the runs it predicts.", ""]
    all_verdicts, images = [], []
    for d in plan["datasets"]:
        prediction = predictions.get(d["name"])
        if not prediction:
            continue
        lines += ["", f"## {d['name']}", ""]
        lines += steps_section(d, rows, prediction, plan["fit_max_batch"])
        fit_text, b_simple = fit_lines(d, rows, prediction)
        lines += fit_text + adascale_lines(d, rows, prediction, b_simple)
        time_text, verdicts = time_lines(d, rows, prediction)
        lines += time_text + recommendation_lines(d, rows, prediction)
        all_verdicts += verdicts
        plan_text, curves = plan_lines(d, prediction, bench, sizes[d["name"]], plan)
        lines += plan_text
        images += plots(d, rows, prediction, curves, out)
    lines += throughput_lines(bench, plan)
    lines += ["", "## Targets", "",
              f"- Predicted time to target within 25% of measured: {sum(all_verdicts)} of {len(all_verdicts)} "
              "configurations (each dataset's table says which, and by how much)."]
    if plan.get("notes"):
        lines += ["", "## Notes (written after the runs)", "", plan["notes"].strip()]
    lines += ["", "## Plots", ""] + [f"![{i}]({i})" for i in images]
    with replacing(os.path.join(out, "report.md")) as f:
        f.write("\n".join(lines) + "\n")
