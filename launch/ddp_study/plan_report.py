"""launch/plan's report: report.md and plots from the runs, the benchmarks and the predictions that
were written before the runs they predict. Reads only; launch/plan runs and predicts.

Each dataset's section says first what the runs measured (steps, the fit, the modes' factors, predicted
against measured), then what the model says (the plan), labelled as such: the plan is the fit and the
benchmarks carried to rank counts, networks and computes no run here had."""
import os

from . import machine, planner, sweep_statistics
from .files import replacing, save_figure
from .plan_runs import command_line, config_keys, eval_every
from .stats import retried_clause, total_minutes
from .sweep_statistics import MISSED, median

RANKS = [2 ** k for k in range(11)]  # 1 .. 1024
LOCAL_BATCHES = [2 ** k for k in range(0, 13)]  # 1 .. 4096: the plan keeps those the compute bench measured
WITHIN = 0.25  # predicted time to target within 25% of measured
THIS_HOST = "this host (shared memory)"


def error(predicted, measured):
    return None if predicted is None or not measured else predicted / measured - 1


def percent(e):
    return "–" if e is None else f"{e * 100:+.0f}%"


def rows_of(rows, **where):
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def measured_compute(bench):
    """The bench with its compute interpolated between the points it measured (planner.compute_seconds),
    for a bench.json written before the compute kept them."""
    bench["compute"].setdefault("points", bench["compute_points"])
    return bench


def measured_at_once(bench, processes):
    """What the bench measured of `processes` processes at once on this machine (compute_by_processes:
    each local batch's data-parallel step on that many ranks, its compute outside the all-reduce and its
    wait in it beyond the exchange), or None: one process, a count not measured, a bench.json from before."""
    shared = bench.get("compute_by_processes", {}).get(str(processes))
    return shared if processes > 1 and shared and "wait_points" in shared else None


def compute_on(bench, processes):
    """The bench's compute for a step of `processes` processes at once on this machine: the runs here of
    2 ranks (on this host, or across the local cluster's nodes, namespaces of the same 2 cores) took
    18-41% longer than one process's compute and the exchange. What the bench measured of that many at
    once where it did, else one process's."""
    shared = measured_at_once(bench, processes)
    if not shared:
        return bench["compute"]
    intercept, per_sample = planner.fit_line(*zip(*shared["points"]))
    return dict(bench["compute"], points=shared["points"], wait_points=shared["wait_points"], intercept=intercept,
                per_sample=per_sample)


def on_this_machine(bench, network, processes):
    """The measured compute on `processes` ranks of `network`: the local cluster's nodes share this
    machine's cores (compute_on); a preset's nodes, or yours, are machines of their own, one process each."""
    return compute_on(bench, processes) if network.startswith("local cluster") else bench["compute"]


def evaluating(bench, prediction):
    """The bench with its compute carrying a dataset's evaluation (prediction's eval_work: seconds an
    evaluation pauses its runs, times the processes the bench measured it on; planner.eval_pause), which
    refills a capped link's bucket; the bench itself where the predictions predate it."""
    work = (prediction or {}).get("eval_work")
    if work is None:
        return bench
    return dict(bench, compute=dict(bench["compute"], eval_work=work))


def levelled(bench, prediction):
    """The bench as a dataset's predictions were priced: its evaluation (evaluating) and its compute at
    the level the predictions were made at (prediction's compute_level: the median of the probes made during
    the sweep, on each count of processes at once, against the compute bench's own step); without a level,
    the bench's compute as measured. Everything priced from it follows."""
    bench = evaluating(bench, prediction)
    level = (prediction or {}).get("compute_level")
    if not level:
        return bench
    one = planner.scaled(bench["compute"], level["1"]["factor"]) if "1" in level else bench["compute"]
    shared = {p: planner.scaled(at_once, level[p]["factor"]) if p in level else at_once
              for p, at_once in bench.get("compute_by_processes", {}).items()}
    return dict(bench, compute=one, compute_points=one["points"], compute_by_processes=shared)


def level_text(prediction):
    level = prediction.get("compute_level")
    if not level:
        return ""
    probes = str(max(v["probes"] for v in level.values())) + " probes made during the sweep"
    median_of = (f"the compute bench's own step and the {probes}" if any(v.get("bench_in_median", True) for v in level.values())
                 else f"the {probes}, against the compute bench's own step")
    return ("; its compute at the level of this machine when the predictions were written: the median of " + median_of + ", " +
            ", ".join(f"{v['factor']:.2f}x on {p} process{'es' if p != '1' else ''}" for p, v in sorted(level.items())))


def probe_on(bench, processes, local_batch):
    """What a later probe on `processes` processes at `local_batch` is held against: the compute bench's own
    step there (compute_on, the wait for the slower process included), not the bench's probe, a single
    sample taken a minute or two later that can catch this VM in another state (one rerun's read 532 us on
    one process against the compute bench's 400 us; the probes after it 399-404 us). An epoch of ddp-train
    and ddp-bench-train's step agree within 3% on a quiet machine (403 against 396 us, 414 against 403)."""
    return planner.compute_seconds(compute_on(bench, processes), local_batch)


def local_batches(bench):
    """The local batches between the smallest and largest the compute bench measured: outside them the
    compute is an extrapolation, so the plan leaves them out."""
    measured = [b for b, _ in bench["compute_points"]]
    return [b for b in LOCAL_BATCHES if min(measured) <= b <= max(measured)]


def eval_cadence(plan, size):
    """global batch -> the steps between evaluations that the plan's runs and command lines set: the plan
    prices their pauses (a capped link's bucket refills) and their cost, as the runs will meet them."""
    return lambda global_batch: eval_every(plan, size, global_batch)


def steps_model(plan, prediction, rows, dataset):
    """The planner's steps model of a dataset: the fit and the modes' factors as predicted, the plain
    lr every measured batch chose."""
    choice = sweep_statistics.lr_choice(rows, dataset)
    plain = {g: lr for (mode, g), (lr, _) in choice.items() if mode == "none"}
    return sweep_statistics.steps_model(prediction["fit"], plain, prediction.get("modes", {}),
                                        prediction.get("start_step", plan["mode_start_step"]), plan["max_real_ranks"],
                                        plan.get("messages", planner.SIMPLE_NN), prediction.get("run_start"))


def reading(row, key):
    """A run's crossing of the target (interpolated between evaluations), else the evaluation's."""
    value = row.get(f"crossing_{key}")
    return value if value is not None else row.get(f"{key}_to_target")


def measured_time(runs):
    """Median seconds and steps to target and step time of the runs that reached it (None where none did)."""
    reached = [r for r in runs if r["status"] == "ok" and reading(r, "seconds") is not None]
    if not reached:
        return None
    return {"seconds": median([reading(r, "seconds") for r in reached]),
            "steps": median([sweep_statistics.steps_of(r) for r in reached]),
            "step_seconds": median(per_step(reached, "train_seconds")),
            "reached": len(reached), "runs": len(runs)}


# --- what the runs measured ----------------------------------------------------------------------


def steps_section(d, rows, prediction, fit_max, choice):
    fit = prediction["fit"]
    lines = [f"### Steps to {d['target_accuracy']:g} test accuracy against the global batch (measured)", "",
             "Each run's steps are where its test accuracy crossed the target, interpolated between evaluations. "
             "The lr at each batch is the one whose median over seeds is least, a seed that missed counted as "
             f"censored (more steps than it ran); the fit used the medians up to batch {fit_max}, and its steps for the "
             "larger ones were written to predictions.json before they ran.", "",
             "| global batch | lr | steps (median) | seeds reached | predicted | error | samples | B_simple at target |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for g in sorted(g for m, g in choice if m == "none"):
        lr, steps = choice[("none", g)]
        s = median(steps)
        predicted = planner.predicted_steps(fit["s_min"], fit["b_crit"], g)
        runs = [r for r in rows_of(rows, dataset=d["name"], part="sweep", global_batch=g, lr=lr)]
        b_simple = median([r.get("b_simple_at_target") for r in runs])
        tag = "" if g <= fit_max else " (out of the fit)"
        lines.append(f"| {g} | {lr:g} | {s:,.1f} | {sum(v != MISSED for v in steps)} of {len(steps)} | {predicted:,.1f}{tag} "
                     f"| {percent(error(predicted, s))} | {s * g:,.0f} | {'–' if b_simple is None else f'{b_simple:,.0f}'} |")
    return lines + beyond_fit_lines(fit, choice, fit_max)


def beyond_fit_lines(fit, choice, fit_max):
    """How the fit did past its batches, beside the plainest rival: the steps held at the largest fitted
    batch's. Where that does as well, the larger batches test S_min only, not B_crit."""
    medians = {g: median(steps) for (m, g), (_, steps) in choice.items() if m == "none"}
    fitted, beyond = [g for g in medians if g <= fit_max], [g for g in medians if g > fit_max]
    if not beyond or not fitted:
        return []
    held = medians[max(fitted)]
    worst = lambda predict: max(abs(predict(g) / medians[g] - 1) for g in beyond)
    model = worst(lambda g: planner.predicted_steps(fit["s_min"], fit["b_crit"], g))
    where = f"batch {beyond[0]}" if len(beyond) == 1 else f"batches {min(beyond)}–{max(beyond)}"
    return ["", f"Past the fit ({where}) the fit's steps are within {model * 100:.0f}% of the "
                f"medians; the steps held at batch {max(fitted)}'s median ({held:,.1f}) are within {worst(lambda g: held) * 100:.0f}%."]


def fit_lines(d, rows, prediction, choice):
    fit = prediction["fit"]
    loo = ""
    if fit.get("b_crit_loo"):
        loo = (f"; leaving one batch out: B_crit {fit['b_crit_loo'][0]:,.0f}–{fit['b_crit_loo'][1]:,.0f}, S_min "
               f"{fit['s_min_loo'][0]:,.1f}–{fit['s_min_loo'][1]:,.1f}")
    lines = ["", f"McCandlish et al.'s model fitted on the {fit.get('statistic', 'mean')}s at batches {fit['batches']}: "
                 f"**S_min = {fit['s_min']:,.1f} steps, E_min = {fit['e_min']:,.0f} samples, B_crit = {fit['b_crit']:,.0f}** "
                 f"(90% bootstrap interval over seeds {fit['b_crit_ci90'][0]:,.0f}–{fit['b_crit_ci90'][1]:,.0f}; S_min "
                 f"{fit['s_min_ci90'][0]:,.1f}–{fit['s_min_ci90'][1]:,.1f}{loo}), rms error {fit['rms_log_error'] * 100:.0f}% "
                 "in steps. The bootstrap shows the seeds' noise; leaving a batch out shows how much the fit rests on "
                 "any one."]
    chosen = [r for r in rows_of(rows, dataset=d["name"], part="sweep", status="ok")
              if choice.get(("none", r["global_batch"]), (None,))[0] == r["lr"]]
    b_simple = median([r.get("b_simple_at_target") for r in chosen])
    if b_simple:
        lines.append(f"The online B_simple where the target was reached (median over the chosen-lr runs that measure it, "
                     f"global batch 128 and up): **{b_simple:,.0f}**; B_crit / B_simple = "
                     f"**{fit['b_crit'] / b_simple:.2f}** (McCandlish et al. find B_crit ≈ B_noise, of which B_simple "
                     "is an estimate that ignores the Hessian's shape).")
    return lines, b_simple


def modes_section(prediction):
    modes = prediction.get("modes") or {}
    if not modes:
        return []
    batches = sorted({int(g) for m in modes.values() for g in m["ratios"]})
    lines = ["", "### Each mode's steps against the plain all-reduce's (measured)", "",
             f"Each mode ran at these batches from step {prediction.get('start_step', '?')} (the steps before it "
             "plain), at the plain runs' best lr there times each of mode_lr_factors (the least median kept). A cell: its "
             "median steps over the plain runs' median. The factor, their geometric mean, is what the plan multiplies the "
             "plain fit by; leaving one batch out shows whether it holds across batches.", "",
             "| mode | " + " | ".join(f"batch {g}" for g in batches) + " | factor | leaving one batch out |",
             "| --- | " + " | ".join("---:" for _ in batches) + " | ---: | ---: |"]
    for mode, m in modes.items():
        cells = [f"{m['ratios'][str(g)]:.2f} (lr {m['lrs'][str(g)]:g})" if str(g) in m["ratios"] else "not reached"
                 for g in batches]
        loo = f"{m['factor_loo'][0]:.2f}–{m['factor_loo'][1]:.2f}" if m.get("factor_loo") else "–"
        lines.append(f"| {planner.mode_label(mode)} | " + " | ".join(cells) + f" | {m['factor']:.2f} | {loo} |")
    return lines


def adascale_lines(d, prediction, b_simple, choice):
    if not b_simple:
        return []
    fit = prediction["fit"]
    medians = {g: median(steps) for (m, g), (_, steps) in choice.items() if m == "none"}
    base = min(medians)
    lines = ["", f"What a step of a larger batch is worth in steps of batch {base} (measured medians, McCandlish's fit, "
                 f"and AdaScale's gain r from B_simple {b_simple:,.0f}):", "",
             "| global batch | scale | measured S(base)/S(B) | fit (1 + B_crit/base)/(1 + B_crit/B) | AdaScale r |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for g in sorted(medians):
        model = (1 + fit["b_crit"] / base) / (1 + fit["b_crit"] / g)
        lines.append(f"| {g} | {g // base} | {medians[base] / medians[g]:.2f} | {model:.2f} | "
                     f"{planner.adascale_gain(b_simple, base, g):.2f} |")
    return lines


def configuration_name(part, g, mode, mbit, group):
    return {"sweep": f"this host, {group[0]['ranks']} process(es), global batch {g}",
            "one_rank": f"1 node, 1 rank, batch {g} (alone: the reference of a second rank)",
            "nodes": f"2 nodes, {mbit} Mbit/s, {planner.mode_label(mode)}, batch {g}",
            "recommendation": f"2 nodes, {mbit} Mbit/s, {planner.mode_label(mode)}, batch {g} "
                              f"({'recommended' if group[0].get('recommended') else 'beside the recommendation'})"}[part]


def run_start_text(prediction):
    start = prediction.get("run_start")
    if not start:
        return " (not priced: these predictions predate it)"
    return (f" ({start['seconds'] * 1e3:.1f} ms + {start['compute_steps']:.2f} × a step's compute: what a run's first "
            f"step costs beyond a steady one, fitted to the sweep's {start['runs']} runs before the predictions, each "
            "the time of its first evaluation less its steps at the pace of the later ones)")


def time_lines(d, rows, prediction, choice):
    """Predicted against measured for every configuration predicted before it ran (the plain sweep at each
    batch's chosen lr, the runs across nodes, the recommendations)."""
    lines = ["", "### Time to target, predicted (before the run) against measured", "",
             "Predicted: the fit's steps (times the mode's factor) × the step time of the throughput model (the "
             "benchmarks, not these runs" + level_text(prediction) + "), plus what each evaluation leaves in the "
             "training time and the run's start"
             + run_start_text(prediction) + ". Probed: the same "
             "with the compute scaled by a probe of this machine made just before the run's group, on as many "
             "processes as it runs (this VM's speed drifts, and processes at once share its caches); – where none "
             "was made (the sweep's own batches). Measured: the median over seeds of the runs' training seconds to "
             "the crossing (evaluations left out).", "",
             "| configuration | predicted step | measured step | predicted time | measured time | error | within 25% "
             "| probed time | error | within 25% |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    groups, verdicts, probed_verdicts, misses = {}, [], [], []
    probed = prediction.get("probed", {})
    for r in rows_of(rows, dataset=d["name"]):
        chosen = choice.get(("none", r["global_batch"]), (None,))[0]
        if r["part"] == "modes" or (r["part"] == "sweep" and r["lr"] != chosen):
            continue
        groups.setdefault((r["part"], r["link_mbit"] or 0, r["global_batch"], r["mode"]), []).append(r)
    for (part, mbit, g, mode), group in sorted(groups.items()):
        predicted = median([prediction["runs"].get(r["name"], {}).get("seconds") for r in group])
        step = median([prediction["runs"].get(r["name"], {}).get("step_seconds") for r in group])
        measured, where = measured_time(group), configuration_name(part, g, mode, mbit, group)
        if predicted is None:
            continue
        if measured is None:
            lines.append(f"| {where} | {step * 1e3:.2f} ms | – | {predicted:.2f} s | not reached | – | – | – | – | – |")
            continue
        e = error(predicted, measured["seconds"])
        verdicts.append(abs(e) <= WITHIN)
        if not verdicts[-1]:
            steps = median([prediction["runs"].get(r["name"], {}).get("steps") for r in group])
            misses.append((where, steps, step, measured["steps"], group))
        again = median([probed.get(r["name"], {}).get("seconds") for r in group])
        cells = "– | – | –"
        if again is not None:
            e_again = error(again, measured["seconds"])
            probed_verdicts.append(abs(e_again) <= WITHIN)
            cells = f"{again:.2f} s | {percent(e_again)} | {'yes' if probed_verdicts[-1] else '**no**'}"
        lines.append(f"| {where} | {step * 1e3:.2f} ms | {measured['step_seconds'] * 1e3:.2f} ms | {predicted:.2f} s | "
                     f"{measured['seconds']:.2f} s | {percent(e)} | {'yes' if verdicts[-1] else '**no**'} | {cells} |")
    lines += ["", f"Within 25%: {sum(verdicts)} of {len(verdicts)} configurations" +
              (f"; probed, {sum(probed_verdicts)} of {len(probed_verdicts)}." if probed_verdicts else ".")]
    return lines + where_the_misses_went(misses), (verdicts, probed_verdicts)


def where_the_misses_went(misses):
    """Each missed configuration's steps and their split as its runs measured them (ddp-train's summary:
    compute and exchange a step), beside the prediction's steps and step: more steps is the fit or a
    mode's factor; compute alone past the whole predicted step is this machine's pace in those runs, not
    the network model. Nothing for runs recorded before the split was."""
    parts = []
    for where, steps, step, measured_steps, group in misses:
        compute, exchange = per_step(group, "compute_seconds"), per_step(group, "comm_seconds")
        if compute and exchange:
            parts.append(f"{where}: predicted {steps:.0f} steps of {step * 1e3:.2f} ms, measured {measured_steps:.0f} "
                         f"steps; compute {spread_ms(compute)}, exchange {spread_ms(exchange)}")
    if not parts:
        return []
    return ["", "Where the misses' time went (their steps to the target, the median over seeds; ddp-train's summary of "
                "each run: its compute and its exchange a step, the median over seeds and their range): "
                + "; ".join(parts) + "."]


def per_step(runs, key):
    """runs' summary `key` over their steps (those that ran and recorded it)."""
    return [r[key] / r["steps"] for r in runs if r["status"] == "ok" and r.get("steps") and r.get(key) is not None]


def spread_ms(values):
    return f"{median(values) * 1e3:.2f} ms ({min(values) * 1e3:.2f}–{max(values) * 1e3:.2f})"


def recommended_by_link(prediction, rows, dataset):
    """{link: recommendation}: predictions.json's, or (written before the modes) its one recommendation at
    the link its runs had."""
    rec = prediction.get("recommended") or {}
    if "local_batch" in rec:
        links = {r["link_mbit"] for r in rows_of(rows, dataset=dataset, part="recommendation")}
        return {str(link): dict(rec, mode="none") for link in links}
    return rec


def seconds_of_seeds(runs):
    """{seed: seconds to the target} of runs, read as the sweep reads steps (sweep_statistics.steps_of): the
    crossing where there is one, MISSED for a run that ended or diverged before it (censored); a run that
    failed is left out."""
    return {r["seed"]: MISSED if reading(r, "seconds") is None else reading(r, "seconds")
            for r in runs if r["status"] in ("ok", "diverged")}


def recommendation_lines(d, rows, prediction):
    lines, verdicts = [], []
    for mbit, rec in recommended_by_link(prediction, rows, d["name"]).items():
        runs = [r for r in rows_of(rows, dataset=d["name"], part="recommendation") if str(r["link_mbit"]) == mbit]
        seeds = {k: seconds_of_seeds([r for r in runs if (r["mode"], r["global_batch"]) == k])
                 for k in sorted({(r["mode"], r["global_batch"]) for r in runs})}
        seeds = {k: v for k, v in seeds.items() if v}
        chosen = (rec["mode"], rec["global_batch"])
        lines += ["", f"The planner's recommendation for 2 nodes at {mbit} Mbit/s: {planner.mode_label(rec['mode'])}, local "
                      f"batch {rec['local_batch']} (global {rec['global_batch']}), predicted {rec['seconds']:.2f} s; run "
                      "beside its mode at half and double the batch and the next-best mode (medians over seeds): " +
                  ", ".join(f"{planner.mode_label(m)} at {g}: {seconds_text(median(list(v.values())))}"
                            for (m, g), v in seeds.items()) + "."]
        found = sweep_statistics.ratio_to_soonest(seeds, chosen) if chosen in seeds else None
        if found:
            verdicts.append((mbit, rec["mode"], *found))
        lines.append(recommendation_verdict(found, seeds, chosen, runs))
    return lines, verdicts


def recommendation_verdict(found, seeds, chosen, runs):
    if chosen not in seeds:
        return (f"**The recommendation's {sum((r['mode'], r['global_batch']) == chosen for r in runs)} runs all failed**: "
                "no verdict.")
    if found is None:
        return ("Nothing beside it ran: no verdict." if len(seeds) == 1 else
                "**Neither it nor any run beside it reached the target** (in the median seed): no verdict.")
    ratio, (lo, hi) = found
    if ratio == MISSED:
        return ("**The recommendation missed the target in the median seed, where runs beside it reached it** "
                f"(over {len(seeds[chosen])} seeds).")
    verdict = ("it was the soonest" if ratio <= 1.0 else f"within {100 * (ratio - 1):.0f}%" if ratio <= 1.1 else
               f"**{100 * (ratio - 1):.0f}% slower: the target is within 10%**")
    return (f"The recommendation took {ratio:.2f}× the soonest run beside it ({verdict}), over {len(seeds[chosen])} seeds; "
            f"with the seeds resampled, the same for every configuration, that ratio lies in {lo:.2f}–{hi:.2f}× (90%).")


def seconds_text(seconds):
    return "the median seed missed the target" if seconds == MISSED else f"{seconds:.2f} s"


# --- what the model says --------------------------------------------------------------------------


def after_eval_text(bench):
    c, probe, paused = bench["compute"], bench.get("probe"), bench.get("evaluations")
    pairs = next(iter((paused or {}).get("after_eval_pairs", {}).values()), None)
    how = (f"the median over {len(pairs)} pairs of epochs run back to back, one evaluating every 5 steps and one "
           f"none, which read {min(pairs) * 1e6:,.0f} to {max(pairs) * 1e6:,.0f} µs" if pairs else
           "an epoch evaluating every 5 steps against none")
    text = (f" Each evaluation leaves {c['after_eval'] * 1e6:.0f} µs in the training time ({how}: the steps after one "
            "start on caches its test images emptied)." if "after_eval" in c else "")
    if paused:
        text += (" Each evaluation pauses the training " +
                 ", ".join(f"{s * 1e3:.1f} ms ({name})" for name, s in paused["pause_seconds"].items()) +
                 f" on {paused['processes']} processes (the same epochs: their wall time less their training time; "
                 "on r ranks, the test set split among them, that times "
                 f"{paused['processes']}/r). A capped link's bucket refills in it and in each step's compute.")
    if probe:
        more = "".join(f", on {p} at once {s * 1e6:.0f} µs (less the exchange the model prices on this host)"
                       for p, s in probe.get("by_processes", {}).items())
        text += (f" The probe (a step of an epoch of ddp-train at the plan's local batch on one process, the median of "
                 f"three, {probe['at']}): {probe['seconds'] * 1e6:.0f} µs{more}; each group of timed runs was probed again just before it on as many processes as it "
                 "runs, and predicted again with the compute scaled by its ratio to " +
                 ("the compute bench's own step at that local batch on as many processes (the bench's probe, a single "
                  "sample a minute or two after it, is shown, not used)" if probe.get("against") == "compute bench" else
                  "the bench's own probe on as many processes (on one, where the bench has none)") +
                 ": the probed columns.")
    return text


def processes_text(bench):
    """What the bench measured of processes at once, and which runs it prices."""
    text = ""
    for processes, shared in bench.get("compute_by_processes", {}).items():
        waits = dict(shared.get("wait_points", []))
        text += (f" On {processes} processes at once (this machine's runs of {processes} ranks, on the host and "
                 "across the local cluster's nodes): ddp-bench-train on as many ranks, right after each local batch's "
                 "run on one, gives a step's compute outside the all-reduce and its wait in it for the slower "
                 "process, beyond the exchange the model prices (" +
                 ", ".join(f"{b}: {t * 1e6:,.0f} + {waits.get(b, 0) * 1e6:,.0f} µs" for b, t in shared["points"]) +
                 f"); runs of {processes} ranks here and the plan's cells for {processes} ranks of the local cluster "
                 "are priced with them (the wait once a step), the presets' nodes with one process's compute.")
    return text


def machine_text(bench):
    """What else kept this machine's cores busy before the compute bench and after the bench's probe
    (launch/ddp_study/machine.py)."""
    seen = bench.get("machine")
    if not seen:
        return ""
    before, during = seen["before"], seen.get("during")
    waited = f", after waiting {before['waited_s']:.0f} s for it to quiet" if before["waited_s"] >= 1.5 else ""
    tries = f" (measured {seen['tries']} times: busy on the tries before)" if seen.get("tries", 1) > 1 else ""
    busy = not before["quiet"] if during is None else during["busy_cores"] >= machine.QUIET_CORES
    return (f" Other processes kept {before['busy_cores']:.2f} of {before['cores']} cores busy just before the compute "
            f"bench{waited} (load averages {' '.join(f'{x:.2f}' for x in before['load_average'])}), " +
            (f"{during['busy_cores']:.2f} during the bench's part on this host{tries}" +
             (f" (the hypervisor took {during['steal_cores']:.2f} for other machines)" if "steal_cores" in during
              else "") + ", " if during else "") +
            f"and {seen['after']['busy_cores']:.2f} just after {seen.get('after_what', 'it')}" +
            (": **the bench measured a busy machine**, and its predictions come in long where those processes ended."
             if busy else "."))


def throughput_lines(bench, plan):
    c = bench["compute"]
    lines = ["", "## The throughput model", "",
             f"Compute (ddp-bench-train, one rank of this machine, {bench['measured_at']}): a step of local batch b, "
             "interpolated between the local batches measured (" +
             ", ".join(f"{b}: {t * 1e6:,.0f} µs" for b, t in bench["compute_points"]) + "; the line fitted through "
             f"them, {c['intercept'] * 1e6:,.0f} µs + {c['per_sample'] * 1e6:.2f} µs × b, is shown, not used: a step "
             "can grow faster than its batch); a process of v virtual ranks "
             "takes v of them (the optimizer's step counted each time: a slight overestimate). The plan keeps the local "
             "batches between the smallest and largest measured." + processes_text(bench) + after_eval_text(bench) +
             machine_text(bench), "",
             "| network | α (per collective step) | bandwidth | bucket | where it comes from |",
             "| --- | ---: | ---: | ---: | --- |"]
    for name, net in bench["networks"].items():
        bucket, source = "–", "ddp-bench-comm, 2 ranks: α–β fitted at the sizes this model sends, relative error"
        if net.get("burst_bytes"):
            bucket = f"{net['burst_bytes'] / 1e3:,.1f} kB at {1 / net['line_beta'] / 1e6:,.0f} MB/s"
            source = ("ddp-bench-comm, 2 ranks: the rate from messages larger than the bucket; α and the line's speed "
                      "uncapped; the bucket from cluster/link, refilled at the rate while the link is idle (each step's "
                      "compute and arithmetic, each evaluation)")
        lines.append(f"| {name} | {net['alpha'] * 1e6:.1f} µs | {1 / net['beta'] / 1e6:,.1f} MB/s | {bucket} | {source} |")
    for p in planner.NETWORK_PRESETS:
        lines.append(f"| {p['name']} | {p['alpha'] * 1e6:.0f} µs | {p['bytes_per_second'] / 1e6:,.0f} MB/s | – | "
                     f"{p['source']} |")
    for n in plan["networks"]:
        lines.append(f"| {n['name']} | {n['alpha'] * 1e6:.1f} µs | {1 / n['beta'] / 1e6:,.1f} MB/s | – | {n['source']} |")
    lines += ["", f"Compute presets besides the measured core: {planner.H200_ASSUMED['name']}: "
                  f"{planner.H200_ASSUMED['intercept'] * 1e6:.0f} µs + {planner.H200_ASSUMED['per_sample'] * 1e9:.0f} ns × b "
                  f"({planner.H200_ASSUMED['source']})"] + [
        f"; {c['name']}: {c['intercept'] * 1e6:.0f} µs + {c['per_sample'] * 1e9:.0f} ns × b ({c['source']})"
        for c in plan["computes"]]
    lines += ["", "Modes' own arithmetic per step (ddp-bench-comm --compression on this host, less the model's transfer "
                  "time; local SGD pays none's once in H steps): " +
              ", ".join(f"{planner.mode_label(m)} {s * 1e6:.0f} µs" for m, s in bench["overhead"].items()) + "."]
    return lines


MEASURED_CORE = "this machine's core (measured)"


def compute_presets(bench, plan):
    return [{"name": MEASURED_CORE, **bench["compute"]}, planner.H200_ASSUMED] + plan["computes"]


def priced(bench, compute, network, ranks):
    """A plan cell's compute: the measured core's on the local cluster's nodes is that of as many processes
    at once (on_this_machine), as launch/plan's recommendation prices them; any other as it is."""
    return dict(on_this_machine(bench, network, ranks), name=MEASURED_CORE) if compute["name"] == MEASURED_CORE \
        else compute


def networks(bench, plan):
    nets = [(name, net) for name, net in bench["networks"].items() if name.startswith("local cluster")]
    own = [(n["name"], {"alpha": n["alpha"], "beta": n["beta"]}) for n in plan["networks"]]
    return [(p["name"], planner.preset_network(p)) for p in planner.NETWORK_PRESETS] + nets + own


def cell(p):
    if p is None:
        return "–"
    return f"{p['global_batch']}, {planner.mode_label(p['mode'])}: {p['seconds']:.2g} s" + \
        (f" ({p['flags']})" if p["flags"] else "")


def hosts_of(network, ranks, plan):
    """The local cluster's nodes where it has as many as the ranks, else None (a hostfile of yours)."""
    if network.startswith("local cluster") and ranks <= plan["cluster"]["nodes"]:
        return ",".join(f"node{i}" for i in range(1, ranks + 1))
    return None


def recommendation(network, limit, plans, command):
    """One line per network: the fewest ranks within 10% of the best time over all rank counts, what
    they run, and the command line."""
    ranks, best = limit["ranks"], min(plans, key=lambda p: p["seconds"])
    flags = f" ({limit['flags']}: see the flags above)" if limit["flags"] else ""
    head = (f"- {ranks} rank{'s' if ranks > 1 else ''} on {network}: global batch {limit['global_batch']} "
            f"({limit['local_batch']} a rank), {planner.mode_label(limit['mode'])}, lr {limit['lr']:.3g}, "
            f"{limit['steps']:,.0f} steps, {limit['seconds']:.3g} s{flags}; ")
    if ranks == 1 and len(plans) > 1 and plans[1]["seconds"] >= limit["seconds"]:
        why = f"a second rank does not pay (2 ranks: {plans[1]['seconds']:.3g} s)"
    elif best is limit:
        why = f"the soonest over {plans[0]['ranks']}–{plans[-1]['ranks']} ranks"
    else:
        why = (f"the fewest ranks within {planner.SCALING_WITHIN:.0%} of the best over {plans[0]['ranks']}–"
               f"{plans[-1]['ranks']} ranks ({best['seconds']:.3g} s at {best['ranks']})")
    return head + why + f": `{command}`"


def plan_lines(d, prediction, bench, size, plan, model):
    """The plan tables (per compute: networks × ranks), one recommendation per network, and the entries
    launch/plan prints for the plan's own networks and computes."""
    lines = ["", f"### The plan for {d['name']} (model output, not measured)", "",
             "Every figure here is the model's: the fit's steps (times the mode's factor) × the throughput model's step, "
             "on the measured core and links and on the presets' figures (their sources in the throughput model), with "
             "each mode's plain steps before its start step. The runs above test it on 2 nodes only. Cells: the global "
             "batch and mode with the least predicted time to the target, and that time; global batches outside the "
             f"measured {model.batches[0]}–{model.batches[1]} and local batches outside the compute bench's are left out "
             "(–). Flags: " + "; ".join(f"({k}) {v}" for k, v in planner.FLAGS_MEANING.items()) + ".", ""]
    curves, entries = {}, []
    for compute in compute_presets(bench, plan):
        lines += [f"Compute: {compute['name']}.", "", "| network | " + " | ".join(str(n) for n in RANKS) + " |",
                  "| --- | " + " | ".join("---:" for _ in RANKS) + " |"]
        recommendations = []
        for name, net in networks(bench, plan):
            plans = [planner.best_configuration(model, priced(bench, compute, name, n), net, n, local_batches(bench), size,
                                                bench["overhead"], eval_cadence(plan, size))
                     for n in RANKS]
            lines.append(f"| {name} | " + " | ".join(cell(p) for p in plans) + " |")
            plans = [p for p in plans if p]
            if not plans:
                continue
            curves[(compute["name"], name)] = plans
            limit = planner.scaling_limit(plans)
            command = command_line(plan, d, size, limit, hosts_of(name, limit["ranks"], plan))
            recommendations.append(recommendation(name, limit, plans, command))
            entries.append({"dataset": d["name"], "compute": compute["name"], "network": name, "text": recommendations[-1],
                            "keys": config_keys(plan, d, size, limit), "command": command, "configuration": limit})
        lines += ["", f"Where adding ranks stops paying (the fewest ranks within {planner.SCALING_WITHIN:.0%} of the best "
                      "time over all rank counts), with the command that runs it:", ""] + recommendations + [""]
    return lines, curves, entries


def plots(d, rows, prediction, curves, out, choice):
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
        ax.set_ylabel(f"predicted seconds to {d['target_accuracy']:g} (model)")
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
    for (mode, g), (lr, steps) in sorted(choice.items()):
        pts = [(s * g, s) for s in steps if mode == "none" and s != MISSED]
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


def dataset_section(plan, d, rows, bench, prediction, size, out):
    """(lines, verdicts, recommendation verdicts, images, entries) of one dataset."""
    choice = sweep_statistics.lr_choice(rows, d["name"])
    model = steps_model(plan, prediction, rows, d["name"])
    lines = ["", f"## {d['name']}", ""] + steps_section(d, rows, prediction, plan["fit_max_batch"], choice)
    fit_text, b_simple = fit_lines(d, rows, prediction, choice)
    lines += fit_text + modes_section(prediction) + adascale_lines(d, prediction, b_simple, choice)
    time_text, verdicts = time_lines(d, rows, prediction, choice)
    rec_text, rec_verdicts = recommendation_lines(d, rows, prediction)
    plan_text, curves, entries = plan_lines(d, prediction, levelled(bench, prediction), size, plan, model)
    images = plots(d, rows, prediction, curves, out, choice)
    return lines + time_text + rec_text + plan_text, verdicts, rec_verdicts, images, entries


def write_report(plan, out, rows, bench, predictions, sizes, command_line_, date, seconds):
    """Writes report.md and the plots; returns the recommendation entries of every network and compute."""
    ok = sum(r["status"] == "ok" for r in rows)
    replanned = "--plan-only" in command_line_.split()
    made = (f"Planned again by `{command_line_}` on {date} from this folder's measurements (bench.json, "
            f"predictions.json, runs.json; `{command_line_.replace(' --plan-only', '')}` measures them again: "
            f"{ok} of {len(rows)} runs completed{retried_clause(rows)}, "
            if replanned else
            f"Made by `{command_line_}` on {date} ({ok} of {len(rows)} runs completed{retried_clause(rows)}; "
            f"{seconds / 60:.0f} minutes for this invocation, ")
    lines = [f"# Time to accuracy at any scale: {plan['name']}", "",
             made + f"the runs' own training time {total_minutes(rows, 'train_seconds'):.0f} minutes). "
             f"Predictions written at: " + ", ".join(f"{n} {p['written_at']}" + (f" (runs added at {p['extended_at']})" if
                                                                   "extended_at" in p else "")
                                                 for n, p in predictions.items()) +
             " (predictions.json), each before the runs it predicts.", ""]
    all_verdicts, all_probed, all_recs, images, entries = [], [], [], [], []
    for d in plan["datasets"]:
        if d["name"] not in predictions:
            continue
        text, verdicts, recs, made, found = dataset_section(plan, d, rows, bench, predictions[d["name"]],
                                                            sizes[d["name"]], out)
        lines += text
        all_verdicts += verdicts[0]
        all_probed += verdicts[1]
        all_recs += [(d["name"], *r) for r in recs]
        images += made
        entries += found
    lines += throughput_lines(bench, plan) + targets_lines(all_verdicts, all_probed, all_recs)
    if plan.get("notes"):
        lines += ["", "## Notes (written after the runs)", "", plan["notes"].strip()]
    lines += ["", "## Plots", ""] + [f"![{i}]({i})" for i in images]
    with replacing(os.path.join(out, "report.md")) as f:
        f.write("\n".join(lines) + "\n")
    return entries


def targets_lines(verdicts, probed, recs):
    lines = ["", "## Targets", "",
             f"- Predicted time to target within 25% of measured: {sum(verdicts)} of {len(verdicts)} configurations "
             f"({sum(verdicts) / max(1, len(verdicts)):.0%}; target: 90%)."]
    if probed:
        lines.append(f"- The same, probed (the compute scaled by a probe just before the run): {sum(probed)} of "
                     f"{len(probed)} of the configurations probed ({sum(probed) / len(probed):.0%}).")
    for dataset, mbit, mode, ratio, (lo, hi) in recs:
        lines.append(f"- {dataset}, 2 nodes at {mbit} Mbit/s: the recommendation ({planner.mode_label(mode)}) took "
                     f"{ratio:.2f}× the soonest run beside it (target: at most 1.10×; seeds resampled, {lo:.2f}–{hi:.2f}× "
                     "in 90%).")
    return lines
