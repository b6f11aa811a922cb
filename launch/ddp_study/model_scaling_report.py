"""launch/model-scaling's report: the models side by side, from each model's launch/plan results
(OUT/<model>/: plan.yaml, bench.json, predictions.json, runs.json). Reads only.

What it compares, each from the runs unless it says the model's:
  the models      parameters, bytes a step, one rank's compute and its ratio to the exchange at 1 Gbit/s
  throughput      samples/s on 1 rank (this host) and on 2 nodes at each link cap, plain and the best mode
  steps           steps to the target against the global batch, McCandlish et al.'s fit and B_crit
  a second rank   the planner's answer on every network (model output) and the runs' on the local cluster's
  the linear rule the tuned lr against lr_64 x B/64, and the batch where steps stop falling with the batch
"""
import os

import yaml

from . import planner, plan_report, sweep_statistics
from .files import read_json, replacing, save_figure
from .plan_runs import PLAN_DEFAULTS
from .sweep_statistics import MISSED, median

EFFICIENT = 0.5  # the linear rule holds while B/64 times the batch takes at least half as many fewer steps


def load(out, model):
    folder = os.path.join(out, model)
    with open(os.path.join(folder, "plan.yaml")) as f:
        plan = yaml.safe_load(f)
    found = {k: read_json(os.path.join(folder, f"{k}.json")) for k in ("bench", "predictions", "runs")}
    return plan, plan_report.measured_compute(found["bench"]), found["predictions"], found["runs"]


class ModelResults:
    """One model's plan results, read as the comparison needs them."""

    def __init__(self, out, name, size, messages):
        self.name, self.size, self.messages = name, size, messages
        self.plan, self.bench, predictions, self.rows = load(out, name)
        for key, value in PLAN_DEFAULTS.items():
            self.plan.setdefault(key, value)
        self.plan["messages"] = messages
        self.plan.setdefault("networks", [])  # a model's plan has none of its own: the presets and the cluster's
        self.dataset = self.plan["datasets"][0]
        self.prediction = predictions[self.dataset["name"]]
        self.choice = sweep_statistics.lr_choice(self.rows, self.dataset["name"])
        self.steps_model = plan_report.steps_model(self.plan, self.prediction, self.rows, self.dataset["name"])

    def compute_step(self, local_batch):
        return planner.compute_seconds(self.bench["compute"], local_batch)

    def runs(self, **where):
        return plan_report.rows_of(self.rows, dataset=self.dataset["name"], **where)

    def one_rank(self):
        """1 rank on one node at global batch local_batch, run alone beside the runs across nodes (launch/plan's
        part one_rank; the sweep's own ran two at a time under --jobs): (time, samples/s)."""
        return timed(self.runs(part="one_rank"))

    def on_nodes(self, mbit):
        """{(mode, global batch): (time, samples/s)} of the runs across 2 nodes at `mbit`."""
        groups = {}
        for r in self.runs(link_mbit=mbit):
            groups.setdefault((r["mode"], r["global_batch"]), []).append(r)
        return {k: timed(v) for k, v in groups.items() if timed(v)}


def timed(runs):
    """(median seconds to the target, median samples/s while training) of the runs that reached it."""
    measured = plan_report.measured_time(runs)
    if not measured:
        return None
    rates = [r["global_batch"] * r["steps"] / r["train_seconds"] for r in runs if r["status"] == "ok" and r["train_seconds"]]
    return measured["seconds"], median(rates)


def models_lines(models):
    lines = ["## The models", "",
             "Bytes a step: what each rank all-reduces (the dry run's shapes, src/sync's rule). Compute: ddp-bench-train, "
             "one rank of this machine at local batch 64 (each plan's bench). Exchange at 1 Gbit/s: the model of the "
             "local cluster's capped link (each plan's ddp-bench-comm), two ranks, at its rate (the bucket empty; a "
             "step's compute refills some of it, which the plans price).", "",
             "| model | parameters | bytes a step, plain | PowerSGD r2 | compute a step of 64 | samples/s, 1 rank "
             "| exchange at 1 Gbit/s | compute / exchange |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m in models:
        step = m.compute_step(64)
        net = m.bench["networks"].get("local cluster, tbf 1000 Mbit/s")
        exchange = planner.exchange_seconds("none", 2, net, messages=m.messages) if net else None
        lines.append(f"| {m.name} | {m.messages.gradient_floats:,} | {planner.bytes_per_step('none', m.messages):,.0f} | "
                     f"{planner.bytes_per_step('powersgd:2', m.messages):,.0f} | {step * 1e3:.2f} ms | {64 / step:,.0f} | "
                     + (f"{exchange * 1e3:.2f} ms | {step / exchange:.2f} |" if exchange else "– | – |"))
    return lines


def throughput_lines(models):
    links = models[0].plan["cluster"]["links_mbit"]
    g = 2 * models[0].plan["local_batch"]
    lines = ["", "## Throughput: 1 rank against 2 nodes (measured)", "",
             f"Samples/s while training (evaluations left out; the median over seeds) and the time to the target. 1 rank: "
             f"one node of the local cluster at batch {models[0].plan['local_batch']}, alone, as the runs across nodes "
             f"are. 2 nodes: the local "
             f"cluster's, one rank each at global batch {g}, plain and the mode that reached the target soonest at that "
             "cap (the modes ran: " + ", ".join(planner.mode_label(x) for x in models[0].plan["cluster"]["modes"]) +
             "). The nodes share this host's 2 cores, as two ranks of one host would.", "",
             "| model | 1 rank | " + " | ".join(f"2 nodes, {mbit} Mbit/s: plain | best mode" for mbit in links) + " |",
             "| --- | ---: | " + " | ".join("---: | ---:" for _ in links) + " |"]
    for m in models:
        one = m.one_rank()
        cells = [fmt(one)]
        for mbit in links:
            found = {k: v for k, v in m.on_nodes(mbit).items() if k[1] == g}
            plain = found.get(("none", g))
            best = min(found.items(), key=lambda kv: kv[1][0]) if found else None
            cells += [fmt(plain), (fmt(best[1]) + f" ({planner.mode_label(best[0][0])})") if best else "–"]
        lines.append(f"| {m.name} | " + " | ".join(cells) + " |")
    return lines


def fmt(measured):
    return "–" if not measured else f"{measured[1]:,.0f}/s, {measured[0]:.2f} s"


def steps_lines(models):
    batches = sorted({g for m in models for g in m.dataset["global_batches"]})
    target = models[0].dataset["target_accuracy"]
    lines = ["", f"## Steps to {target:g} against the global batch (measured)", "",
             "The median over seeds at each batch's best lr (a seed that missed counted as censored); McCandlish et "
             "al.'s S = S_min (1 + B_crit/B) fitted on the batches up to "
             f"{models[0].plan['fit_max_batch']} (each plan's report has the intervals and each seed).", "",
             "| global batch | " + " | ".join(f"{m.name}: steps (lr)" for m in models) + " |",
             "| ---: | " + " | ".join("---:" for _ in models) + " |"]
    for g in batches:
        cells = []
        for m in models:
            lr, steps = m.choice.get(("none", g), (None, None))
            s = median(steps) if steps else None
            cells.append("not reached" if s in (None, MISSED) else f"{s:,.0f} ({lr:g})")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines += ["", "| model | S_min | B_crit | 90% interval (seeds) | leaving one batch out | E_min (samples) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for m in models:
        fit = m.prediction["fit"]
        loo = fit.get("b_crit_loo") or []
        lines.append(f"| {m.name} | {fit['s_min']:.0f} | {fit['b_crit']:.0f} | {fit['b_crit_ci90'][0]:.0f}–"
                     f"{fit['b_crit_ci90'][1]:.0f} | " + (f"{min(loo):.0f}–{max(loo):.0f}" if loo else "–") +
                     f" | {fit['e_min']:,.0f} |")
    return lines


def second_rank_lines(models):
    """Per model and network: does a second rank pay, as the planner says (model output) and, on the local
    cluster's caps, as the runs say."""
    lines = ["", "## Does a second rank pay?", "",
             "The planner (model output): the least predicted time to the target on 1 rank and on 2 (any mode and local "
             "batch the bench measured) with this machine's compute (on the local cluster's nodes, two processes sharing "
             "its cores, where the bench measured that), on the presets and the local cluster's measured links. The runs (measured), on the local cluster's caps only: 1 rank on one node at batch 64 (alone) against the "
             "soonest of the runs across 2 nodes at that cap (every mode and batch that ran there). A row says `yes` "
             f"where 2 ranks reach the target sooner by more than {planner.SCALING_WITHIN:.0%}, `no` where later by more, "
             "and `even` between (the planner's own rule for where adding ranks stops paying; two seeds on this VM "
             "cannot tell closer times apart).", "",
             "| model | network | planner: 1 rank | 2 ranks | pays? | runs: 1 rank | 2 nodes | pays? | agree? |",
             "| --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- |"]
    agreements = []
    for m in models:
        local = plan_report.local_batches(m.bench)
        now = plan_report.levelled(m.bench, m.prediction)  # as its plan's recommendation was priced
        for name, net in plan_report.networks(m.bench, m.plan):
            one, two = (planner.best_configuration(m.steps_model, plan_report.on_this_machine(now, name, n), net, n,
                                                   local, m.size, m.bench["overhead"],
                                                   plan_report.eval_cadence(m.plan, m.size))
                        for n in (1, 2))
            if not one or not two:
                continue
            predicted_pays = pays(one["seconds"], two["seconds"])
            row = (f"| {m.name} | {name} | {one['seconds']:.2f} s | {two['seconds']:.2f} s "
                   f"({two['global_batch']}, {planner.mode_label(two['mode'])}) | {predicted_pays} |")
            mbit = cap_of(name)
            measured_one, runs = m.one_rank(), m.on_nodes(mbit) if mbit else {}
            if mbit and measured_one and runs:
                (mode, g), best = min(runs.items(), key=lambda kv: kv[1][0])
                measured_pays = pays(measured_one[0], best[0])
                agreements.append(measured_pays == predicted_pays)
                row += (f" {measured_one[0]:.2f} s | {best[0]:.2f} s ({g}, {planner.mode_label(mode)}) | "
                        f"{measured_pays} | {'yes' if measured_pays == predicted_pays else '**no**'} |")
            else:
                row += " – | – | – | – |"
            lines.append(row)
    lines += ["", f"The planner and the runs agree on {sum(agreements)} of {len(agreements)} (model, capped link) pairs."]
    return lines


def pays(one, two, within=planner.SCALING_WITHIN):
    """Does a second rank pay, from the times to the target on one and on two: yes, no, or even."""
    if two < one * (1 - within):
        return "yes"
    return "no" if two > one * (1 + within) else "even"


def cap_of(network_name):
    """The tbf cap in Mbit/s of a local cluster network's name, else None."""
    if network_name.startswith("local cluster, tbf "):
        return int(network_name.split()[3])
    return None


def linear_rule_lines(models):
    """Where the linear rule breaks: per model, the efficiency of each batch against 64's (steps at 64 over
    steps at B times B/64: 1 where steps fall as the batch grows) and the tuned lr against lr_64 x B/64."""
    base = models[0].plan["local_batch"]
    lines = ["", "## Where the linear scaling rule breaks (measured)", "",
             f"The article's claim, per model: multiply the batch by k = B/{base} and the lr by k, and the steps fall "
             f"k-fold. Efficiency: S({base}) / (S(B) × k), 1 where they do. The tuned lr: the sweep's best, against "
             f"the linear rule's lr_{base} × k. The rule holds while the efficiency is at least {EFFICIENT:.0%}; McCandlish "
             f"et al.'s S = S_min (1 + B_crit/B) makes it ({base} + B_crit) / (B + B_crit), {EFFICIENT:.0%} at "
             f"B = B_crit + {2 * base}.", "",
             "| global batch | " + " | ".join(f"{m.name}: efficiency | tuned lr / linear" for m in models) + " |",
             "| ---: | " + " | ".join("---: | ---:" for _ in models) + " |"]
    verdicts = {}
    batches = sorted({g for m in models for g in m.dataset["global_batches"]})
    for g in batches:
        cells = []
        for m in models:
            e, r = efficiency(m, base, g)
            cells += ["–" if e is None else f"{e:.2f}", "–" if r is None else f"{r:.2f}"]
            if e is not None and e < EFFICIENT and m.name not in verdicts:
                verdicts[m.name] = g
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines.append("")
    for m in models:
        b_crit = m.prediction["fit"]["b_crit"]
        where = (f"breaks at batch {verdicts[m.name]} (the first measured with efficiency under {EFFICIENT:.0%})"
                 if m.name in verdicts else f"holds at every batch measured (to {max(m.dataset['global_batches'])})")
        lines.append(f"- **{m.name}**: the linear rule {where}; the fit (B_crit {b_crit:.0f}) puts it at batch "
                     f"{b_crit + 2 * base:.0f}.")
    return lines


def efficiency(m, base, g):
    lr0, s0 = m.choice.get(("none", base), (None, None))
    lr, s = m.choice.get(("none", g), (None, None))
    if not s0 or not s or median(s) in (None, MISSED) or median(s0) in (None, MISSED):
        return None, None
    k = g / base
    return median(s0) / (median(s) * k), lr / (lr0 * k)


def plot(models, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for m in models:
        fit = m.prediction["fit"]
        batches = sorted(g for (mode, g) in m.choice if mode == "none")
        points = [(g, median(m.choice[("none", g)][1])) for g in batches]
        points = [(g, s) for g, s in points if s not in (None, MISSED)]
        line = ax.plot([2 ** k for k in range(6, 13)], [planner.predicted_steps(fit["s_min"], fit["b_crit"], 2 ** k)
                                                        for k in range(6, 13)], label=f"{m.name}: fit, B_crit {fit['b_crit']:.0f}")
        ax.scatter(*zip(*points), color=line[0].get_color(), s=18)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("global batch")
    ax.set_ylabel(f"steps to {models[0].dataset['target_accuracy']:g} (median over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    name = "steps_vs_batch.png"
    save_figure(fig, os.path.join(out, name))
    plt.close(fig)
    return [name]


def finished(out, model):
    return os.path.isfile(os.path.join(out, model, "runs.json"))


def write_report(study, out, facts, command_line, regenerate=None):
    """facts: {model: (training samples, planner.Messages)}. Writes OUT/report.md and the plot from the models
    whose plan has finished (the others named as not run yet); returns its path."""
    models = [ModelResults(out, m["name"], *facts[m["name"]]) for m in study["models"] if finished(out, m["name"])]
    missing = [m["name"] for m in study["models"] if not finished(out, m["name"])]
    ok = sum(r["status"] == "ok" for m in models for r in m.rows)
    total = sum(len(m.rows) for m in models)
    lines = [f"# Where data parallelism starts to pay, per model: {study['name']}", "",
             (f"Made by `{command_line}`" if not regenerate else
              f"Reported by `{command_line}` from the runs `{regenerate}` makes (it runs them all again)") +
             f" ({ok} of {total} runs completed). Each model's own report, with its "
             "predictions against the runs and the plan from 1 to 1024 ranks: " +
             ", ".join(f"[{m.name}]({m.name}/report.md)" for m in models) + ".", ""]
    if missing:
        lines += [f"**Not run yet: {', '.join(missing)}** (its plan has no runs.json; `launch/model-scaling "
                  "STUDY --reuse` runs what is missing).", ""]
    if not models:
        raise ValueError(f"no model of {study['name']} has finished its plan in {out}")
    lines += models_lines(models) + throughput_lines(models) + steps_lines(models) + second_rank_lines(models)
    lines += linear_rule_lines(models)
    if study.get("notes"):
        lines += ["", "## Notes (written after the runs)", "", study["notes"].strip()]
    images = plot(models, out)
    lines += ["", "## Plots", ""] + [f"![{i}]({i})" for i in images]
    path = os.path.join(out, "report.md")
    with replacing(path) as f:
        f.write("\n".join(lines) + "\n")
    return path
