"""The slow-links study's report (launch/slow-links): report.md and its plots, from the finished runs.
launch/slow-links runs them; this only reads what it collected."""
import math
import os
import statistics

from . import critical_batch
from .files import replacing, save_figure
from .stats import mean_std, retried_clause, total_minutes

TBF_NOTE = ("Links are capped with tc tbf (rate M, a bucket of 4 ms at M, 50 ms of queue) at both ends of every "
            "node's veth pair, so each direction of each node pair runs at M. tbf shapes bandwidth only: it adds no "
            "propagation delay and no loss (netem is not available here), so a real network of the same rate, "
            "with its latency, would slow the many-message modes (PowerSGD: two all-reduces a step) more.")


def link_name(mbit):
    if mbit in ("", None, 0):
        return "uncapped"
    return f"{mbit / 1000:g} Gbit/s" if mbit >= 1000 else f"{mbit} Mbit/s"


def number(value):
    return float(value) if value not in ("", None) else None


class Runs:
    def __init__(self, rows):
        self.rows = rows

    def select(self, **where):
        return [r for r in self.rows if all(r.get(k) == v for k, v in where.items())]

    def values(self, key, **where):
        return [number(r[key]) for r in self.select(**where) if r["status"] == "ok" and number(r.get(key)) is not None]

    def median(self, key, **where):
        v = self.values(key, **where)
        return statistics.median(v) if v else None

    def reached(self, **where):
        """(runs that reached the target, runs that completed)."""
        done = [r for r in self.select(**where) if r["status"] == "ok"]
        return sum(number(r.get("seconds_to_target")) is not None for r in done), len(done)


def ratio_cell(value, base, fmt, higher_is_better=True):
    if value is None:
        return "–"
    if base is None or value == 0:
        return fmt.format(value)
    ratio = value / base if higher_is_better else base / value
    return f"{fmt.format(value)} ({ratio:.2f}×)"


def throughput_table(runs, study, lr):
    caps = study["links_mbit"]
    lines = [f"### {lr}: samples/s (median of {len(study['seeds'])} seed(s); × the plain all-reduce's at the same link)",
             "", "| mode | bytes/step | " + " | ".join(link_name(c) for c in caps) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in caps) + " |"]
    for m in study["modes"]:
        name = m["name"]
        bytes_per_step = runs.median("comm_bytes_per_step", part="links", mode=name, lr=lr)
        cells = [ratio_cell(runs.median("samples_per_second", part="links", mode=name, lr=lr, link_mbit=c),
                            runs.median("samples_per_second", part="links", mode="none", lr=lr, link_mbit=c),
                            "{:,.0f}") for c in caps]
        lines.append(f"| {name} | {'–' if bytes_per_step is None else f'{bytes_per_step:,.0f}'} | "
                     + " | ".join(cells) + " |")
    return lines


def target_table(runs, study, lr):
    caps, target = study["links_mbit"], target_accuracy(study)
    lines = [f"### {lr}: training seconds to {target:g} test accuracy (median; × faster than none; runs that "
             f"reached it)", "", "| mode | " + " | ".join(link_name(c) for c in caps) + " |",
             "| --- | " + " | ".join("---:" for _ in caps) + " |"]
    for m in study["modes"]:
        cells = []
        for c in caps:
            where = dict(part="links", mode=m["name"], lr=lr, link_mbit=c)
            reached, done = runs.reached(**where)
            value = runs.median("seconds_to_target", **where) if reached == done and done else None
            base_where = dict(where, mode="none")
            base = runs.median("seconds_to_target", **base_where) if runs.reached(**base_where)[0] else None
            cell = ratio_cell(value, base, "{:.1f}", higher_is_better=False)
            cells.append(cell if reached == done else f"{reached}/{done} reached")
        lines.append(f"| {m['name']} | " + " | ".join(cells) + " |")
    return lines


def accuracy_table(runs, study):
    points = study["accuracy_points"]
    lines = [f"### Final test accuracy after {epochs_of(study)} epoch(s) (mean ± std over seeds; Δ against none, in "
             f"points)", "", "| mode | " + " | ".join(lr["name"] for lr in study["lrs"]) + " |",
             "| --- | " + " | ".join("---:" for _ in study["lrs"]) + " |"]
    for m in study["modes"]:
        cells = []
        for lr in study["lrs"]:
            acc = runs.values("final_test_accuracy", part="links", mode=m["name"], lr=lr["name"],
                              link_mbit=study["links_mbit"][0])
            base = runs.values("final_test_accuracy", part="links", mode="none", lr=lr["name"],
                               link_mbit=study["links_mbit"][0])
            if not acc:
                cells.append("–")
                continue
            mean, std = mean_std(acc)
            delta = (mean - mean_std(base)[0]) * 100 if base else float("nan")
            flag = " **(misses)**" if delta < -points else ""
            cells.append(f"{mean:.4f} ± {std:.4f} ({delta:+.2f}){flag}")
        lines.append(f"| {m['name']} | " + " | ".join(cells) + " |")
    same = identical_across_links(runs, study)
    lines += ["", f"Accuracy is read at one link ({link_name(study['links_mbit'][0])}): the network does not enter "
                  f"the arithmetic, and every run of a mode, lr and seed ended with "
                  f"{'the same parameters (parameters_crc32) at every link' if same else 'DIFFERENT parameters at different links (a defect)'}."]
    return lines


def identical_across_links(runs, study):
    for m in study["modes"]:
        for lr in study["lrs"]:
            for seed in study["seeds"]:
                crcs = {r.get("parameters_crc32") for r in runs.select(part="links", mode=m["name"], lr=lr["name"],
                                                                       seed=seed) if r["status"] == "ok"}
                if len(crcs) > 1:
                    return False
    return True


def target_accuracy(study):
    for o in study["overrides"]:
        if o.startswith("metrics.target_accuracy="):
            return float(o.split("=", 1)[1])
    return float("nan")


def epochs_of(study):
    for o in study["overrides"]:
        if o.startswith("train.epochs="):
            return o.split("=", 1)[1]
    return "?"


def target_lines(runs, study):
    lines = ["", "## Targets", ""]
    for t in study["targets"]:
        for lr in study["lrs"]:
            value = runs.median("samples_per_second", part="links", mode=t["mode"], lr=lr["name"],
                                link_mbit=t["link_mbit"])
            base = runs.median("samples_per_second", part="links", mode="none", lr=lr["name"], link_mbit=t["link_mbit"])
            if value is None or base is None:
                lines.append(f"- {t['mode']} at {link_name(t['link_mbit'])} ({lr['name']}): no result")
                continue
            ratio = value / base
            verdict = "met" if ratio >= t["speedup"] else "**missed**"
            lines.append(f"- {t['mode']} ≥ {t['speedup']:g}× the samples/s of none at {link_name(t['link_mbit'])} "
                         f"({lr['name']}): {value:,.0f} / {base:,.0f} = {ratio:.2f}×, {verdict}")
    points = study["accuracy_points"]
    for lr in study["lrs"]:
        base = mean_std(runs.values("final_test_accuracy", part="links", mode="none", lr=lr["name"],
                                    link_mbit=study["links_mbit"][0]))[0]
        for m in study["modes"][1:]:
            acc = runs.values("final_test_accuracy", part="links", mode=m["name"], lr=lr["name"],
                              link_mbit=study["links_mbit"][0])
            if not acc:
                continue
            delta = (mean_std(acc)[0] - base) * 100
            if delta < -points:
                lines.append(f"- accuracy within {points:g} point{'s' if points != 1 else ''} of none ({lr['name']}): {m['name']} **misses** by "
                             f"{-delta - points:.2f} points ({delta:+.2f})")
    if not any("accuracy within" in line for line in lines):
        lines.append(f"- accuracy within {points:g} point{'s' if points != 1 else ''} of none: every mode, at every lr")
    return lines


def winners(runs, study):
    """Per lr and link: the mode that reached the target soonest."""
    lines = ["", "## Fastest to the target, by link", "", "| lr | " + " | ".join(link_name(c) for c in
                                                                                study["links_mbit"]) + " |",
             "| --- | " + " | ".join("---" for _ in study["links_mbit"]) + " |"]
    for lr in study["lrs"]:
        cells = []
        for c in study["links_mbit"]:
            best = None
            for m in study["modes"]:
                where = dict(part="links", mode=m["name"], lr=lr["name"], link_mbit=c)
                reached, done = runs.reached(**where)
                if done and reached == done:
                    t = runs.median("seconds_to_target", **where)
                    if best is None or t < best[1]:
                        best = (m["name"], t)
            cells.append("–" if best is None else f"{best[0]} ({best[1]:.1f} s)")
        lines.append(f"| {lr['name']} | " + " | ".join(cells) + " |")
    return lines


def batch_lines(runs, study):
    sweep = study.get("batch_sweep")
    if not sweep or not runs.select(part="batch"):
        return []
    batches = sweep["global_batches"]
    lines = ["", f"## The article's claim under compression: accuracy against the global batch", "",
             f"{sweep.get('ranks', 2)} ranks on one host, global batch = {sweep.get('ranks', 2)} x local batch, "
             f"{sweep['lr']['name']} scaled linearly ({' '.join(sweep['lr']['overrides'] + sweep.get('overrides', []))}); "
             "mean ± std over seeds, a diverged run counted as chance.", "",
             "| global batch | " + " | ".join(sweep["modes"]) + " |", "| ---: | " + " | ".join("---:" for _ in
                                                                                        sweep["modes"]) + " |"]
    by_mode = {}
    for name in sweep["modes"]:
        by_mode[name] = {g: critical_batch.mean_accuracy(runs.select(part="batch", mode=name, global_batch=g))
                         for g in batches}
    for g in batches:
        cells = []
        for name in sweep["modes"]:
            acc = runs.values("final_test_accuracy", part="batch", mode=name, global_batch=g)
            diverged = sum(r["status"] == "diverged" for r in runs.select(part="batch", mode=name, global_batch=g))
            cells.append("–" if not acc and not diverged else
                         f"{mean_std(acc)[0]:.3f} ± {mean_std(acc)[1]:.3f}" + (f" ({diverged} diverged)" if diverged else ""))
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines += ["", "Where the linear rule first loses more than 2 points against the mode's own smallest batch:", ""]
    for name in sweep["modes"]:
        lost = critical_batch.first_loss(by_mode[name])
        lines.append(f"- {name}: {'no batch lost 2 points' if lost is None else f'at {lost}'} "
                     f"(held to {critical_batch.last_held(by_mode[name])})")
    return lines


def plots(runs, study, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["", "(matplotlib missing: no plots)"]
    caps = study["links_mbit"]
    top = max(c for c in caps if c) * 10
    x_of = {c: (c if c else top) for c in caps}
    made = []
    for key, name, ylabel in (("samples_per_second", "throughput_vs_link.png", "samples/s (median)"),
                              ("seconds_to_target", "time_to_target_vs_link.png",
                               f"seconds to {target_accuracy(study):g} accuracy (median)")):
        fig, axes = plt.subplots(1, len(study["lrs"]), figsize=(6 * len(study["lrs"]), 4.5), squeeze=False)
        for ax, lr in zip(axes[0], study["lrs"]):
            for m in study["modes"]:
                points = [(x_of[c], runs.median(key, part="links", mode=m["name"], lr=lr["name"], link_mbit=c))
                          for c in caps]
                points = sorted((x, y) for x, y in points if y is not None)
                if points:
                    ax.plot(*zip(*points), marker="o", label=m["name"])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks([x_of[c] for c in caps])
            ax.set_xticklabels([link_name(c) for c in caps])
            ax.set_xlabel("link (2 nodes x 1 rank)")
            ax.set_ylabel(ylabel)
            ax.set_title(lr["name"])
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, os.path.join(out, name))
        plt.close(fig)
        made.append(name)
    sweep = study.get("batch_sweep")
    if sweep and runs.select(part="batch"):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for name in sweep["modes"]:
            points = [(g, critical_batch.mean_accuracy(runs.select(part="batch", mode=name, global_batch=g)))
                      for g in sweep["global_batches"]]
            points = [(g, a) for g, a in points if not math.isnan(a)]
            if points:
                ax.plot(*zip(*points), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("global batch")
        ax.set_ylabel("final test accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, os.path.join(out, "accuracy_vs_batch.png"))
        plt.close(fig)
        made.append("accuracy_vs_batch.png")
    return ["", "## Plots", ""] + [f"![{m}]({m})" for m in made]


def write_report(study, out, rows, command_line, date, seconds):
    runs = Runs(rows)
    ok = sum(r["status"] == "ok" for r in rows)
    lines = [f"# Across slow links: {study['name']}", "",
             f"Made by `{command_line}` on {date} ({ok} of {len(rows)} runs completed, "
             f"{sum(r['status'] == 'diverged' for r in rows)} diverged{retried_clause(rows)}; {seconds / 60:.0f} minutes "
             "for this invocation, "
             f"the runs' own wall time {total_minutes(rows, 'wall_seconds'):.0f} minutes).", "",
             f"Base config `{study['config']}` with {' '.join(study['overrides'])}; {study['nodes']} nodes x 1 rank of "
             f"the local cluster; seeds {study['seeds']}. For every seed, lr and link every mode ran once, so the modes "
             "alternate and a busy moment of the shared machine falls on all of them: read the medians and the ratios.",
             "", TBF_NOTE]
    if runs.select(part="links"):
        lines += ["", "## Throughput", ""]
        for lr in study["lrs"]:
            lines += throughput_table(runs, study, lr["name"]) + [""]
        lines += ["## Time to accuracy", ""]
        for lr in study["lrs"]:
            lines += target_table(runs, study, lr["name"]) + [""]
        lines += ["## Accuracy", ""] + accuracy_table(runs, study)
        lines += target_lines(runs, study) + winners(runs, study)
    lines += batch_lines(runs, study)
    if study.get("notes"):
        lines += ["", "## Notes (written after the runs)", "", study["notes"].strip()]
    lines += plots(runs, study, out)
    with replacing(os.path.join(out, "report.md")) as f:
        f.write("\n".join(lines) + "\n")
