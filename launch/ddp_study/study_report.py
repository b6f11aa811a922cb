"""The scaling study's report (launch/study): report.md's tables and sections, and its plots, from
the finished runs. launch/study runs the sweep; this only reads what it collected."""
import math
import os

from . import critical_batch
from .files import replacing, save_figure
from .stats import mean_std, retried_clause, total_minutes


class Sweep:
    """The study's runs, looked up by rule and global batch."""

    def __init__(self, study, rows, epochs):
        self.study, self.rows, self.epochs = study, rows, epochs
        self.rules = [r["name"] for r in study["rules"]]
        self.batches = sorted({r["global_batch"] for r in rows})
        self.ok = [r for r in rows if r["status"] == "ok"]

    def runs(self, rule, g):
        return [r for r in self.rows if r["rule"] == rule and r["global_batch"] == g]

    def values(self, rule, g, key):
        """One float per completed run that has `key` (diverged and failed runs have none)."""
        return [float(r[key]) for r in self.ok if r["rule"] == rule and r["global_batch"] == g
                and r.get(key) not in ("", None)]

    def accuracies(self, rule, g):
        return self.values(rule, g, "final_test_accuracy")

    def steps(self, rule, g):
        return self.values(rule, g, "steps")

    def mean_steps(self, rule, g):
        return f"{mean_std(self.steps(rule, g))[0]:,.0f}" if self.steps(rule, g) else "–"

    def accuracy_by_batch(self, rule):
        """{global batch: mean accuracy, a diverged run counted as chance}: what "holds" and "loses" read."""
        return {g: critical_batch.mean_accuracy(self.runs(rule, g)) for g in self.batches}


def header(sweep, command_line, date, reused):
    study, rows = sweep.study, sweep.rows
    return [f"# Scaling study: {study['name']}", "",
            f"Made by `{command_line}` on {date} ({len(sweep.ok)} of {len(rows)} runs completed, "
            f"{sum(r['status'] == 'diverged' for r in rows)} diverged"
            + (f"; {reused} finished by an earlier invocation with the same command line" if reused else "")
            + retried_clause(rows) + f"; the runs' own wall time {total_minutes(rows, 'wall_seconds'):.0f} minutes).", "",
            f"Base config `{study['config']}` with {' '.join(study['overrides']) or 'no overrides'}; "
            f"local batch {study['local_batch']}, seeds {study['seeds']}; global batch = local batch x ranks x "
            f"virtual ranks (at most {study['max_real_ranks']} processes)."]


def accuracy_table(sweep):
    lines = ["", "## Final test accuracy (mean ± std over seeds)", "",
             "| global batch | ranks x virtual | " + " | ".join(sweep.rules) + " |",
             "| ---: | ---: | " + " | ".join("---:" for _ in sweep.rules) + " |"]
    for g in sweep.batches:
        shape = next(f"{r['ranks']} x {r['virtual_ranks']}" for r in sweep.rows if r["global_batch"] == g)
        cells = []
        for rule in sweep.rules:
            m, s = mean_std(sweep.accuracies(rule, g))
            diverged = sum(r["status"] == "diverged" for r in sweep.runs(rule, g))
            if math.isnan(m):
                cells.append(f"diverged ({diverged})" if diverged else "failed")
            else:
                cells.append(f"{m:.3f} ± {s:.3f}" + (f" ({diverged} diverged)" if diverged else ""))
        lines.append(f"| {g} | {shape} | " + " | ".join(cells) + " |")
    return lines


def steps_table(sweep):
    """Steps differ between rules once one (AdaScale) ends on its progress rather than on epochs."""
    lines = ["", "## Steps taken (mean over seeds)", "", "| global batch | " + " | ".join(sweep.rules) + " |",
             "| ---: | " + " | ".join("---:" for _ in sweep.rules) + " |"]
    for g in sweep.batches:
        cells = [f"{mean_std(sweep.steps(rule, g))[0]:.0f}" if sweep.steps(rule, g) else "–" for rule in sweep.rules]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


def holds_section(sweep):
    """Per rule: the largest global batch before it first loses more than 2 points of its own
    smallest-batch accuracy (a diverged run counted as chance), and what it costs in steps."""
    first, last = sweep.batches[0], sweep.batches[-1]
    lines = ["", "## Which rule holds where", "",
             "A rule holds at a batch while its mean accuracy stays within 2 points of its own accuracy at the "
             f"smallest batch ({first}); a diverged run counts as chance ({critical_batch.CHANCE}).", "",
             f"| rule | accuracy at {first} | holds up to | accuracy there | steps there | "
             f"accuracy at {last} | steps at {last} |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for rule in sweep.rules:
        by_batch = sweep.accuracy_by_batch(rule)
        held = critical_batch.last_held(by_batch)
        if held is None:
            lines.append(f"| {rule} | {by_batch[first]:.3f} | no reference: the smallest batch failed or learnt "
                         "nothing | | | | |")
            continue
        lost = critical_batch.first_loss(by_batch)
        lines.append(f"| {rule} | {by_batch[first]:.3f} | {held}{'' if lost else ' (all)'} | {by_batch[held]:.3f} | "
                     f"{sweep.mean_steps(rule, held)} | {by_batch[last]:.3f} | {sweep.mean_steps(rule, last)} |")
    return lines


def prediction_lines(prediction, predated=0):
    """The prediction as it was written before the sweep (or, where `predated` sweep runs had
    finished earlier, not before all of it)."""
    predicted = prediction["predicted_critical_batch"]
    per_seed = ", ".join(f"{r['b_simple_run']:.0f}" if r["b_simple_run"] else
                         (r["status"] if r["status"] != "ok" else "no estimate") for r in prediction["runs"])
    scales_from = ": the batch and lr every rule scales from" if prediction["base_batch"] == prediction["global_batch"] \
        else ""
    return ["", "## Critical batch: predicted before the sweep, then observed", "",
            (f"**Predicted critical batch ≈ {predicted:.0f}**" if predicted else "**No prediction**")
            + f" (written to `prediction.json` at {prediction['written_at']}, "
            + (f"after {predated} sweep runs reused from an earlier invocation had finished: it was not stated before "
               "them)." if predated else "before any larger batch ran)."), "",
            f"Estimate: B_simple = tr(Σ) / |G|² (McCandlish et al. 2018: the critical batch B_crit ≈ B_noise, "
            f"which B_simple estimates without the Hessian), from the runs at the smallest global batch only "
            f"({prediction['global_batch']}, `{prediction['rule']}`, lr {prediction['lr']}{scales_from}), split into "
            f"{prediction['ranks']} ranks x {prediction['virtual_ranks']} virtual micro-batches of "
            f"{prediction['micro_batch']} so that B_small = {prediction['micro_batch']} and "
            f"B_big = {prediction['global_batch']}. The per-step estimates of tr(Σ) and |G|² (each step's own, "
            f"unsmoothed: `noise_trace_sigma_raw`, `noise_grad_sq_raw` in `steps.jsonl`) are averaged "
            f"separately over the whole run (the ratio of noisy estimates is biased; a fixed epoch budget asks a "
            f"larger batch to keep pace over the whole run), then averaged over seeds: {per_seed}."]


# A fall of more than this between neighbouring batches is a cliff: interpolating across it says little.
CLIFF = 0.2


def observation_lines(predicted, rule, by_batch):
    """What the sweep saw, compared with the prediction; why, where it misses."""
    lost, held = critical_batch.first_loss(by_batch), critical_batch.last_held(by_batch)
    reference = critical_batch.reference_accuracy(by_batch)
    if reference is None:
        return ["", f"Observed: nothing, `{rule}` failed or learnt nothing at the smallest batch."]
    first = min(by_batch)
    lines = []
    if lost:
        lines += ["", f"**Observed: `{rule}` first loses more than 2 points at global batch {lost}** "
                      f"({by_batch[lost]:.3f} vs {reference:.3f} at {first}; a diverged run counts as chance, "
                      f"{critical_batch.CHANCE})."]
    lines += ["", critical_batch.verdict(predicted, lost, held) + "."]
    if not (predicted and lost):
        return lines
    drop_held, drop_lost = reference - by_batch[held], reference - by_batch[lost]
    crossing = critical_batch.interpolated_crossing(by_batch)
    lines += ["", f"A finer reading, added to the stated criterion: interpolating the loss linearly in log2(batch) "
                  f"between {held} ({drop_held * 100:.1f} points lost) and {lost} ({drop_lost * 100:.1f} points) "
                  f"puts the 2-point crossing at ≈ {crossing:.0f}, {crossing / predicted:.2f}x the prediction"
                  + (" (but the accuracy falls off a cliff between the two, so this says little)."
                     if drop_lost - drop_held > CLIFF else ".")]
    ratio = lost / predicted
    if not 0.5 <= ratio <= 2:
        lines += ["", f"Why it misses: the sweep's batches step by {lost / held:.2g}x there, so the first batch that "
                      f"loses is an upper bound on the crossing (the ratio lies between {held / predicted:.2f} and "
                      f"{ratio:.2f}); and the prediction rests on two approximations that McCandlish et al. hold only "
                      "to a small factor: B_simple equals B_noise = tr(HΣ) / GᵀHG only when the Hessian H is a "
                      "multiple of the identity, and B_crit ≈ B_noise is itself an order-of-magnitude relation. "
                      "Losing 2 points in a fixed epoch budget is a third reading of \"critical\", not the paper's "
                      "(the batch at which a run needs twice the minimum data)."]
    return lines


def noise_table(sweep):
    lines = ["", "## Gradient noise scale B_simple (final epoch, mean over seeds)", "",
             "Measured online in each run with B_small = the local batch and B_big = the global batch "
             "(McCandlish et al. 2018, appendix A.1), its moving averages over the same amount of data at every "
             "batch (`metrics.noise_scale_decay` per `lr.base_batch` samples, as AdaptDL's θ = 0.999^S); it depends "
             "on the learning rate, so compare within a rule.",
             "", "| global batch | " + " | ".join(sweep.rules) + " |",
             "| ---: | " + " | ".join("---:" for _ in sweep.rules) + " |"]
    for g in sweep.batches:
        cells = [f"{mean_std(sweep.values(rule, g, 'b_simple'))[0]:.0f}" if sweep.values(rule, g, "b_simple")
                 else "–" for rule in sweep.rules]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


def throughput(sweep):
    """Samples/s and parallel efficiency by real ranks, from the runs without virtual ranks."""
    by_ranks = {}
    for r in sweep.ok:
        if int(r["virtual_ranks"]) == 1:
            by_ranks.setdefault(int(r["ranks"]), []).append(float(r["samples_per_second"]))
    ranks = sorted(by_ranks)
    sps = [mean_std(by_ranks[n])[0] for n in ranks]
    efficiency = [s / (n * sps[0] / ranks[0]) for s, n in zip(sps, ranks)] if ranks else []
    return ranks, sps, efficiency


def throughput_table(ranks, sps, efficiency):
    return ["", "## Throughput (runs without virtual ranks, mean over rules and seeds)", "",
            "| ranks | samples/s | parallel efficiency |", "| ---: | ---: | ---: |"] + \
        [f"| {n} | {s:,.0f} | {e:.2f} |" for n, s, e in zip(ranks, sps, efficiency)]


def write_report(study, out, rows, epochs, command_line, date, prediction=None, reused=0, predated=0):
    """report.md and the plots, into out."""
    sweep = Sweep(study, rows, epochs)
    lines = header(sweep, command_line, date, reused) + accuracy_table(sweep) + steps_table(sweep) \
        + holds_section(sweep)
    failed = [r for r in rows if r["status"] not in ("ok", "diverged")]
    if failed:
        lines += ["", "Failed runs: " + ", ".join(f"{r['rule']}/b{r['global_batch']}/s{r['seed']} ({r['status']})"
                                                  for r in failed)]
    # Where linear scaling (with warmup where the study has it) first loses accuracy.
    reference_rule = (prediction or {}).get("rule") or next((r for r in ("linear+warmup", "linear")
                                                             if r in sweep.rules), None)
    by_batch = sweep.accuracy_by_batch(reference_rule) if reference_rule else {}
    drop_batch = critical_batch.first_loss(by_batch)
    if prediction:
        lines += prediction_lines(prediction, predated) + observation_lines(prediction["predicted_critical_batch"],
                                                                            reference_rule, by_batch)
    if study["notes"]:
        # Written by hand after reading a finished sweep; the study config keeps them so that a
        # regenerated report keeps them too, marked as what they are.
        lines += ["", "## Notes (written by hand, kept in the study config)", "", study["notes"].strip()]
    plots = Plots(sweep, out)
    if any(sweep.values(rule, g, "b_simple") for rule in sweep.rules for g in sweep.batches):
        lines += noise_table(sweep)
        if drop_batch and not prediction:
            lines += ["", f"`{reference_rule}` first loses more than 0.02 accuracy at global batch {drop_batch}."]
        plots.noise_scale(reference_rule, drop_batch, (prediction or {}).get("predicted_critical_batch"))
    plots.accuracy_vs_batch()
    plots.accuracy_vs_steps()
    plots.loss_curves()
    ranks, sps, efficiency = throughput(sweep)
    if ranks:
        plots.throughput(ranks, sps, efficiency)
        lines += throughput_table(ranks, sps, efficiency)
    lines += ["", "Plots: `accuracy_vs_batch.png`, `accuracy_vs_steps.png`, `loss_curves.png`, `throughput.png`, "
              "`noise_scale.png`. Data: `runs.csv` (one row per run), `epochs.csv` (one row per run and epoch)."]
    with replacing(os.path.join(out, "report.md")) as f:
        f.write("\n".join(lines) + "\n")


class Plots:
    """The report's figures, one method each, written into out."""

    def __init__(self, sweep, out):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        self.plt, self.sweep, self.out = plt, sweep, out

    def _figure(self):
        return self.plt.subplots(figsize=(7, 4.5))

    def _save(self, fig, ax, name, legend_size=None):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
        fig.tight_layout()
        save_figure(fig, os.path.join(self.out, name))
        self.plt.close(fig)

    def noise_scale(self, reference_rule, drop_batch, predicted):
        sweep = self.sweep
        fig, ax = self._figure()
        for rule in sweep.rules:
            xs = [g for g in sweep.batches if sweep.values(rule, g, "b_simple")]
            ax.plot(xs, [mean_std(sweep.values(rule, g, "b_simple"))[0] for g in xs], marker="o",
                    label=f"B_simple ({rule})")
        if drop_batch:
            ax.axvline(drop_batch, color="black", linestyle="--", label=f"{reference_rule} loses accuracy")
        if predicted:
            ax.axvline(predicted, color="tab:gray", linestyle=":", label="predicted critical batch")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("global batch")
        ax.set_ylabel("B_simple (final epoch)")
        ax.set_title("gradient noise scale vs the batch where scaling breaks")
        self._save(fig, ax, "noise_scale.png", legend_size=8)

    def accuracy_vs_batch(self):
        sweep = self.sweep
        fig, ax = self._figure()
        for rule in sweep.rules:
            points = [(g, *mean_std(sweep.accuracies(rule, g))) for g in sweep.batches]
            points = [p for p in points if not math.isnan(p[1])]
            ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                        capsize=3, label=rule)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("global batch")
        ax.set_ylabel("final test accuracy")
        ax.set_title(f"{sweep.study['name']}: accuracy vs global batch")
        self._save(fig, ax, "accuracy_vs_batch.png")

    def accuracy_vs_steps(self):
        """The trade of steps for accuracy: one line per rule through its global batches."""
        sweep = self.sweep
        fig, ax = self._figure()
        for rule in sweep.rules:
            points = [(mean_std(sweep.steps(rule, g))[0], mean_std(sweep.accuracies(rule, g))[0], g)
                      for g in sweep.batches if sweep.steps(rule, g)]
            if points:
                line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=rule)
                for x, y, g in (points[0], points[-1]):
                    ax.annotate(str(g), (x, y), fontsize=7, color=line.get_color(), xytext=(3, 3),
                                textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("steps taken (mean over seeds; labels: global batch)")
        ax.set_ylabel("final test accuracy")
        ax.set_title(f"{sweep.study['name']}: accuracy vs steps taken")
        self._save(fig, ax, "accuracy_vs_steps.png", legend_size=8)

    def loss_curves(self):
        """Training loss per epoch at the largest batch, one line per rule (seed mean)."""
        sweep, largest = self.sweep, self.sweep.batches[-1]
        fig, ax = self._figure()
        for rule in sweep.rules:
            per_epoch = {}
            for e in sweep.epochs:
                if e["rule"] == rule and e["global_batch"] == largest:
                    per_epoch.setdefault(e["epoch"], []).append(float(e["train_loss"]))
            if per_epoch:
                xs = sorted(per_epoch)
                ax.plot(xs, [mean_std(per_epoch[x])[0] for x in xs], marker="o", label=rule)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (mean over ranks and seeds)")
        ax.set_title(f"training loss at global batch {largest}")
        self._save(fig, ax, "loss_curves.png")

    def throughput(self, ranks, sps, efficiency):
        fig, ax = self._figure()
        ax.plot(ranks, sps, marker="o", color="tab:blue", label="samples/s")
        ax.set_xlabel("ranks (processes)")
        ax.set_ylabel("training samples/s", color="tab:blue")
        ax2 = ax.twinx()
        ax2.plot(ranks, efficiency, marker="s", color="tab:red", label="parallel efficiency")
        ax2.set_ylabel("parallel efficiency", color="tab:red")
        ax2.set_ylim(0, 1.1)
        ax.set_title("throughput and parallel efficiency")
        self._save(fig, ax, "throughput.png")
