"""What launch/plan's sweep measured, read one way at every batch and in every mode: where each run crossed
the target (interpolated between evaluations), the lr chosen per batch and mode, McCandlish's fit with
its sensitivity (a bootstrap over seeds, and each batch left out), and each mode's steps as a factor of
the plain ones.

One statistic throughout: the median over seeds. A seed that missed the target is censored (it needed
more steps than it ran), and a median takes it as such: it counts as more than any seed that reached the
target, so it moves the median the right way, and the median is unknown only where most seeds missed. A
mean cannot take it without inventing a value, and dropping it makes an lr whose seeds often miss look
good."""
import math
import random
import statistics

from . import planner

MISSED = math.inf  # a seed that never reached the target: more steps than it ran


def crossing(evals, target):
    """(step, train seconds) where the test accuracy first reached `target`, interpolated linearly
    between the evaluation before and the first at or above it (read at that evaluation alone it is
    late by half an interval on average: 23 steps at batch 64 on Fashion-MNIST); None if never.
    evals: evals.jsonl's records in order (step, test_acc, train_seconds)."""
    before = None
    for e in evals:
        if e["test_acc"] >= target:
            if before is None:  # reached at the first evaluation: no earlier reading to interpolate from
                return e["step"], e["train_seconds"]
            f = (target - before["test_acc"]) / (e["test_acc"] - before["test_acc"])
            return (before["step"] + f * (e["step"] - before["step"]),
                    before["train_seconds"] + f * (e["train_seconds"] - before["train_seconds"]))
        before = e
    return None


def steps_of(row):
    """A run's steps to the target: its interpolated crossing (the recorded step for runs read before
    crossings were), MISSED where it ended without reaching it (diverged included), None where it
    failed (no measurement)."""
    if row["status"] not in ("ok", "diverged"):
        return None
    for key in ("crossing_step", "steps_to_target"):
        if row.get(key) is not None:
            return row[key]
    return MISSED


def median(values):
    """The median of the seeds' steps, MISSED counted as more than any; None for no seeds."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def lr_choice(rows, dataset):
    """{(mode, B): (lr, [steps of each seed at that lr])}: per mode and global batch of the sweep, the
    lr with the least median; an lr most of whose seeds missed is never chosen, and a batch where every
    lr's median missed is left out."""
    cells = {}
    for r in rows:
        steps = steps_of(r)
        if r["dataset"] == dataset and r["part"] in ("sweep", "modes") and steps is not None:
            cells.setdefault((r["mode"], r["global_batch"]), {}).setdefault(r["lr"], []).append(steps)
    chosen = {}
    for key, by_lr in cells.items():
        lr = min(sorted(by_lr), key=lambda lr: median(by_lr[lr]))
        if median(by_lr[lr]) != MISSED:
            chosen[key] = (lr, by_lr[lr])
    return chosen


def plain_steps(choice, fit_max):
    """{B: [steps of each seed]} of the plain runs at the chosen lr, batches up to fit_max."""
    return {b: steps for (mode, b), (_, steps) in choice.items() if mode == "none" and b <= fit_max}


def fit_medians(by_batch):
    """(S_min, B_crit, rms) of McCandlish's model on each batch's median (batches whose median missed
    left out), or None with fewer than two batches."""
    medians = {b: median(v) for b, v in by_batch.items()}
    batches = sorted(b for b, m in medians.items() if m not in (None, MISSED))
    if len(batches) < 2:
        return None
    return planner.fit_steps(batches, [medians[b] for b in batches])


def bootstrap(by_batch, resamples=1000, seed=0, level=0.9):
    """The `level` intervals of (S_min, B_crit): the fit repeated on seeds resampled with replacement
    within each batch, censored ones included. Returns ((s_lo, s_hi), (b_lo, b_hi))."""
    rng = random.Random(seed)
    fits = []
    for _ in range(resamples):
        fit = fit_medians({b: [rng.choice(v) for _ in v] for b, v in by_batch.items() if v})
        if fit:
            fits.append(fit)
    q = (1 - level) / 2
    pick = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
    s_mins, b_crits = [f[0] for f in fits], [f[1] for f in fits]
    return (pick(s_mins, q), pick(s_mins, 1 - q)), (pick(b_crits, q), pick(b_crits, 1 - q))


def ratio_to_soonest(times, chosen, resamples=1000, seed=0, level=0.9):
    """The `chosen` configuration's median seconds to the target against the least median of the others
    beside it, times = {configuration: {seed: seconds, MISSED for a seed that missed}}: under 1 it was the
    soonest. With that ratio's `level` interval: the seeds resampled with replacement, the same draw for
    every configuration (they ran seed by seed, each seed's configurations one after another on a machine
    whose speed moves). The interval says how far a verdict of "within 10%" rests on the seeds' spread.
    Returns (ratio, (lo, hi)), or None where nothing beside it ran or no configuration reached the target."""
    def ratio(seeds):
        medians = {k: median([v[s] for s in seeds if s in v]) for k, v in times.items()}
        mine, others = medians.pop(chosen, None), [m for m in medians.values() if m is not None]
        if mine is None or not others:
            return None
        soonest = min(others)
        return 1.0 if mine == soonest else mine / soonest  # MISSED against MISSED: as soon
    every_seed = sorted({s for v in times.values() for s in v})
    point = ratio(every_seed)
    if point is None or median(list(times[chosen].values())) == MISSED == min(
            median(list(v.values())) for k, v in times.items() if k != chosen):
        return None
    rng = random.Random(seed)
    draws = [ratio([rng.choice(every_seed) for _ in every_seed]) for _ in range(resamples)]
    draws = sorted(d for d in draws if d is not None)
    q = (1 - level) / 2
    pick = lambda p: draws[min(len(draws) - 1, int(p * len(draws)))]
    return point, (pick(q), pick(1 - q))


def leave_one_batch_out(by_batch):
    """{B: (S_min, B_crit)} fitted without batch B, for every batch whose absence leaves two: how much
    the fit rests on any one batch (a bias a bootstrap over seeds cannot show)."""
    left = {}
    for b in sorted(by_batch):
        fit = fit_medians({k: v for k, v in by_batch.items() if k != b})
        if fit:
            left[b] = fit[:2]
    return left


def fit_sweep(choice, fit_max, resamples=1000):
    """The plain fit on the batches up to fit_max, as predictions.json records it: S_min, B_crit, E_min,
    the rms error, the batches, seeds that missed per batch, the 90% bootstrap interval and the range
    leaving one batch out."""
    by_batch = plain_steps(choice, fit_max)
    fitted = fit_medians(by_batch)
    if fitted is None:
        raise ValueError(f"the fit needs the target reached at two global batches up to {fit_max} at least")
    s_min, b_crit, rms = fitted
    (s_lo, s_hi), (b_lo, b_hi) = bootstrap(by_batch, resamples)
    left = leave_one_batch_out(by_batch)
    return {"statistic": "median", "s_min": s_min, "b_crit": b_crit, "e_min": s_min * b_crit, "rms_log_error": rms,
            "batches": sorted(by_batch), "missed": {str(b): sum(s == MISSED for s in v) for b, v in by_batch.items()},
            "s_min_ci90": [s_lo, s_hi], "b_crit_ci90": [b_lo, b_hi],
            "leave_one_out": {str(b): list(f) for b, f in left.items()},
            "s_min_loo": [min(f[0] for f in left.values()), max(f[0] for f in left.values())] if left else None,
            "b_crit_loo": [min(f[1] for f in left.values()), max(f[1] for f in left.values())] if left else None}


def geometric_mean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def mode_factors(choice, modes):
    """{mode: {"factor", "ratios": {B: r}, "factor_loo": [lo, hi], "lrs": {B: lr}}} for each mode but none
    that reached the target at a batch: at each batch it reached it, its median steps over the
    plain runs' there (each at its own best lr); the factor is their geometric mean. One parameter for
    the few batches a mode runs at (a two-parameter fit of its own would rest on three medians), beside
    the ratios that show whether it holds across batches, and its range leaving one batch out."""
    plain = {b: median(steps) for (mode, b), (_, steps) in choice.items() if mode == "none"}
    factors = {}
    for mode in modes:
        ran = {b: v for (m, b), v in choice.items() if m == mode and b in plain}
        ratios = {b: median(steps) / plain[b] for b, (_, steps) in ran.items()}
        if mode == "none" or not ratios:
            continue
        loo = [geometric_mean([r for k, r in ratios.items() if k != b]) for b in ratios] if len(ratios) > 1 else []
        factors[mode] = {"factor": geometric_mean(list(ratios.values())),
                         "ratios": {str(b): r for b, r in sorted(ratios.items())},
                         "factor_loo": [min(loo), max(loo)] if loo else None,
                         "lrs": {str(b): lr for b, (lr, _) in sorted(ran.items())}}
    return factors


def steps_model(fit, plain_lrs, factors, start_step, local_sgd_ranks=None, messages=planner.SIMPLE_NN, run_start=None):
    """The planner's StepsModel from the fit, the plain lrs per batch, the modes' factors and the runs'
    start (their JSON form, as predictions.json holds them)."""
    modes = {"none": {"factor": 1.0, "lrs": {int(b): lr for b, lr in plain_lrs.items()}}}
    for mode, f in factors.items():
        modes[mode] = {"factor": f["factor"], "lrs": {int(b): lr for b, lr in f["lrs"].items()},
                       "ranks": local_sgd_ranks if planner.is_local_sgd(mode) else None}
    return planner.StepsModel(fit["s_min"], fit["b_crit"], modes, start_step, messages, run_start)
