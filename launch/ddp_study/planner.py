"""The models behind launch/plan: how many steps a batch needs to reach a target (statistical), how
long a step takes (throughput), and the search that combines them into a time to target.

Statistical model (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", eq. 2.11):
with the lr tuned at every batch, the steps S and samples E = S·B to reach a target obey
    S = S_min (1 + B_crit / B),    E = E_min (1 + B / B_crit),    E_min = S_min · B_crit,
so S falls as 1/B while B << B_crit (perfect scaling) and flattens at S_min beyond (no gain).
Statistical efficiency of a batch: E_min / E = 1 / (1 + B / B_crit).

Throughput model: a step is the compute of its micro-batches plus the gradient exchange; an
all-reduce of m bytes over n ranks takes, on a link of latency alpha and seconds-per-byte beta,
    ring  2(n-1) alpha + 2 (n-1)/n m beta        tree  2 ceil(log2 n) alpha + 2 m beta
(the ring's and a pipelined tree's costs in NCCL's tuning model, simplified), and the faster of the
two is taken, as NCCL's tuner does.
"""
import math
import random
import statistics

# --- the statistical model -------------------------------------------------------------------------


def predicted_steps(s_min, b_crit, batch):
    return s_min * (1 + b_crit / batch)


def statistical_efficiency(b_crit, batch):
    """E_min / E(B): the share of the samples a batch spends that the smallest batches would need."""
    return 1 / (1 + batch / b_crit)


def fit_steps(batches, steps):
    """(S_min, B_crit, rms error in log S) fitting S = S_min (1 + B_crit/B) in log space (each point's
    relative error counts the same). For a given B_crit the best S_min is closed-form, so the fit is a
    one-dimensional search over log B_crit. Needs at least 2 batches."""
    points = [(float(b), float(s)) for b, s in zip(batches, steps) if s and s > 0]
    if len({b for b, _ in points}) < 2:
        raise ValueError("fit_steps needs steps at two batches at least")
    logs = [math.log(s) for _, s in points]

    def s_min_of(b_crit):
        return math.exp(sum(l - math.log(1 + b_crit / b) for (b, _), l in zip(points, logs)) / len(points))

    def error(log_b_crit):
        b_crit = math.exp(log_b_crit)
        log_s_min = math.log(s_min_of(b_crit))
        return sum((l - log_s_min - math.log(1 + b_crit / b)) ** 2 for (b, _), l in zip(points, logs))

    low, high = math.log(min(b for b, _ in points) / 1000), math.log(max(b for b, _ in points) * 1000)
    grid = [low + (high - low) * i / 400 for i in range(401)]
    best = min(grid, key=error)
    a, c = best - (high - low) / 400, best + (high - low) / 400
    for _ in range(80):  # golden-section refinement around the best grid point
        m1, m2 = c - (c - a) / 1.618034, a + (c - a) / 1.618034
        if error(m1) < error(m2):
            c = m2
        else:
            a = m1
    b_crit = math.exp((a + c) / 2)
    return s_min_of(b_crit), b_crit, math.sqrt(error(math.log(b_crit)) / len(points))


def bootstrap_fit(steps_by_batch, resamples=1000, seed=0, level=0.9):
    """Confidence intervals of (S_min, B_crit): the fit repeated on resampled seeds (each batch's
    runs drawn with replacement, their mean taken). steps_by_batch: {B: [steps of each seed]}.
    Returns ((s_lo, s_hi), (b_lo, b_hi))."""
    rng = random.Random(seed)
    s_mins, b_crits = [], []
    batches = sorted(b for b, v in steps_by_batch.items() if v)
    for _ in range(resamples):
        means = [sum(rng.choice(steps_by_batch[b]) for _ in steps_by_batch[b]) / len(steps_by_batch[b])
                 for b in batches]
        s, b, _ = fit_steps(batches, means)
        s_mins.append(s)
        b_crits.append(b)
    q = (1 - level) / 2
    pick = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
    return (pick(s_mins, q), pick(s_mins, 1 - q)), (pick(b_crits, q), pick(b_crits, 1 - q))


def adascale_gain(b_simple, base_batch, batch):
    """AdaScale's gain r at scale batch/base_batch from the noise scale (Johnson et al. 2020, with
    sigma^2 = tr(Sigma)/base_batch and mu^2 = |G|^2): r = (sigma^2 + mu^2) / (sigma^2/S + mu^2), the
    base-batch steps of progress one step of `batch` makes."""
    return (b_simple / base_batch + 1) / (b_simple / batch + 1)


# --- the throughput model --------------------------------------------------------------------------


def ring_allreduce_seconds(ranks, message_bytes, alpha, beta):
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * message_bytes * beta


def tree_allreduce_seconds(ranks, message_bytes, alpha, beta):
    if ranks <= 1:
        return 0.0
    return 2 * math.ceil(math.log2(ranks)) * alpha + 2 * message_bytes * beta


def allreduce_seconds(ranks, message_bytes, network):
    """The faster of ring and tree on `network` ({"alpha": s, "beta": s/byte})."""
    a, b = network["alpha"], network["beta"]
    return min(ring_allreduce_seconds(ranks, message_bytes, a, b), tree_allreduce_seconds(ranks, message_bytes, a, b))


def fit_alpha_beta(message_bytes, seconds, ranks):
    """(alpha, beta) of a ring all-reduce over `ranks` from measured (size, time) pairs, fitted as two
    measurements rather than one noisy line: beta from the upper half of the sizes (where the bytes
    dominate: a least-squares slope), alpha from the smallest messages (where latency does: the
    median time, less their bytes' share). A slope lost in noise (not positive) falls back to the
    largest message's time per byte."""
    points = sorted(zip(message_bytes, seconds))
    upper = points[len(points) // 2:]
    slope = fit_line(*zip(*upper))[1] if len(upper) >= 2 else 0.0
    if slope <= 0:
        slope = points[-1][1] / points[-1][0]
    beta = slope / (2 * (ranks - 1) / ranks)
    small = points[:max(1, len(points) // 4)]
    latency = statistics.median(t - 2 * (ranks - 1) / ranks * m * beta for m, t in small)
    return max(0.0, latency) / (2 * (ranks - 1)), beta


def fit_line(xs, ys):
    """(intercept, slope) of a least-squares line."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


# What one step of SimpleNN (101,770 parameters, 138 of them in biases) sends in each mode: a list of
# phases, each a list of messages posted together (their bytes), phases one after the other.
GRADIENT_FLOATS, BIAS_FLOATS, FLAGS = 101770, 138, 4
POWERSGD_ROWS, POWERSGD_COLS = 128 + 10, 784 + 128  # P's rows and Q's rows over both weight matrices


def exchange_phases(mode):
    """mode: "none", "fp16", "bf16", "powersgd:R", "local:H". Returns (phases, share): the messages of
    one exchange and the share of steps that send them (local SGD averages every H steps; its flags
    travel every step and are one more phase)."""
    if mode == "none":
        return [[4 * (GRADIENT_FLOATS + FLAGS)]], 1.0
    if mode in ("fp16", "bf16"):
        return [[2 * GRADIENT_FLOATS, 4 * FLAGS]], 1.0
    kind, _, value = mode.partition(":")
    if kind == "powersgd":
        r = int(value or 2)
        return [[4 * (BIAS_FLOATS + FLAGS), 4 * POWERSGD_ROWS * r], [4 * POWERSGD_COLS * r]], 1.0
    if kind == "local":
        return [[4 * GRADIENT_FLOATS]], 1.0 / int(value)
    raise ValueError(f"unknown exchange mode '{mode}'")


def bytes_per_step(mode):
    phases, share = exchange_phases(mode)
    extra = 4 * FLAGS if mode.startswith("local:") else 0
    return sum(sum(p) for p in phases) * share + extra


def exchange_seconds(mode, ranks, network, overhead=0.0):
    """One step's gradient exchange: every phase's messages (posted together: their latencies overlap,
    their bytes add up), the phases one after the other, plus `overhead` (the mode's own arithmetic)."""
    if ranks <= 1:
        return overhead
    phases, share = exchange_phases(mode)
    seconds = sum(allreduce_seconds(ranks, sum(p), network) for p in phases) * share
    if mode.startswith("local:"):
        seconds += allreduce_seconds(ranks, 4 * FLAGS, network)  # the flags, every step
    return seconds + overhead


def compute_seconds(compute, local_batch, virtual_ranks=1):
    """A process's compute for one step: its virtual ranks' micro-batches one after the other, each
    compute["intercept"] + compute["per_sample"] x local_batch (fitted from ddp-bench-train)."""
    return virtual_ranks * (compute["intercept"] + compute["per_sample"] * local_batch)


def step_seconds(compute, network, ranks, local_batch, virtual_ranks=1, mode="none", overhead=0.0):
    return compute_seconds(compute, local_batch, virtual_ranks) + exchange_seconds(mode, ranks, network, overhead)


# --- the search ------------------------------------------------------------------------------------


def interpolated_lr(best_lr_by_batch, batch):
    """The tuned lr at `batch`, log-interpolated between the measured batches (outside them: the
    nearest's, flagged as extrapolated). Returns (lr, extrapolated)."""
    measured = sorted(best_lr_by_batch)
    if batch <= measured[0]:
        return best_lr_by_batch[measured[0]], batch < measured[0]
    if batch >= measured[-1]:
        return best_lr_by_batch[measured[-1]], batch > measured[-1]
    for lo, hi in zip(measured, measured[1:]):
        if lo <= batch <= hi:
            f = (math.log(batch) - math.log(lo)) / (math.log(hi) - math.log(lo))
            return math.exp(math.log(best_lr_by_batch[lo]) + f * (math.log(best_lr_by_batch[hi]) -
                                                                   math.log(best_lr_by_batch[lo]))), False
    raise AssertionError("unreachable")


def best_configuration(fit, compute, network, ranks, local_batches, max_batch, mode="none", overhead=0.0):
    """The local batch (real ranks, no virtual) with the least predicted time to the target on `ranks`
    ranks: a dict with local_batch, global_batch, steps, samples, step_seconds, seconds, efficiency.
    Global batches beyond max_batch (the training set) are not considered."""
    s_min, b_crit = fit
    best = None
    for b in local_batches:
        batch = ranks * b
        if batch > max_batch:
            continue
        steps = predicted_steps(s_min, b_crit, batch)
        step = step_seconds(compute, network, ranks, b, 1, mode, overhead)
        candidate = {"ranks": ranks, "local_batch": b, "global_batch": batch, "steps": steps, "samples": steps * batch,
                     "step_seconds": step, "seconds": steps * step,
                     "efficiency": statistical_efficiency(b_crit, batch)}
        if best is None or candidate["seconds"] < best["seconds"]:
            best = candidate
    return best


def scaling_limit(plans, gain=0.1):
    """The rank count past which doubling the ranks cuts the time to target by less than `gain`
    (10%): the last worth having. plans: the best configuration at each rank count, ascending."""
    for this, doubled in zip(plans, plans[1:]):
        if doubled["seconds"] > this["seconds"] * (1 - gain):
            return this
    return plans[-1]


# --- presets ----------------------------------------------------------------------------------------
# Networks as their figures say, for what this machine cannot measure. Bandwidth is the line rate in
# one direction (an upper bound: a real all-reduce reaches 80-95% of it); alpha, the latency of one
# step of a collective, is an assumption of the usual order for that fabric, not a measurement.
NETWORK_PRESETS = [
    {"name": "NVLink 4 (H100/H200 SXM)", "bytes_per_second": 450e9, "alpha": 3e-6,
     "source": "NVIDIA H100/H200 SXM datasheets: 900 GB/s NVLink per GPU, both directions; latency assumed"},
    {"name": "InfiniBand NDR", "bytes_per_second": 50e9, "alpha": 5e-6,
     "source": "NDR line rate 400 Gb/s per port; latency assumed (a few us per collective step)"},
    {"name": "100 GbE (RoCE)", "bytes_per_second": 12.5e9, "alpha": 10e-6,
     "source": "IEEE 802.3 100GBASE line rate; latency assumed"},
    {"name": "10 GbE (TCP)", "bytes_per_second": 1.25e9, "alpha": 30e-6,
     "source": "IEEE 802.3 10GBASE line rate; TCP latency assumed"},
    {"name": "1 GbE (TCP)", "bytes_per_second": 0.125e9, "alpha": 50e-6,
     "source": "IEEE 802.3 1000BASE-T line rate; TCP latency assumed"},
]

# Compute presets besides the measured core. SimpleNN's step on a GPU is bound by kernel launches
# (about 27 operators a step, tools/bench_train.cpp --count-ops) rather than arithmetic (0.6 MFLOP a
# sample forward and backward).
H200_ASSUMED = {"name": "H200 (assumed, not measured)", "intercept": 150e-6, "per_sample": 1.2e-8,
                "source": "an assumption until launch/device-check measures it: 27 kernels at ~5 us each, plus "
                          "0.6 MFLOP a sample at 50 TFLOP/s"}


def preset_network(preset):
    return {"alpha": preset["alpha"], "beta": 1 / preset["bytes_per_second"]}
