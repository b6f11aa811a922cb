"""The models behind launch/plan: how many steps a batch needs to reach a target in each way gradients
travel (statistical), how long a step takes (throughput), and the search that combines them into a time
to target.

Statistical model (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", eq. 2.11):
with the lr tuned at every batch, the steps S and samples E = S·B to reach a target obey
    S = S_min (1 + B_crit / B),    E = E_min (1 + B / B_crit),    E_min = S_min · B_crit,
so S falls as 1/B while B << B_crit (perfect scaling) and flattens at S_min beyond (no gain).
Statistical efficiency of a batch: E_min / E = 1 / (1 + B / B_crit). A mode other than the plain
all-reduce (fp16, bf16, PowerSGD, local SGD) takes the plain steps times a factor its own runs measured.

Throughput model: a step is the compute of its micro-batches plus the gradient exchange; an
all-reduce of m bytes over n ranks takes, on a link of latency alpha and seconds-per-byte beta,
    ring  2(n-1) alpha + 2 (n-1)/n m beta        tree  2 ceil(log2 n) alpha + 2 m beta
(the ring's and a pipelined tree's costs in NCCL's tuning model, simplified), and the faster of the
two is taken, as NCCL's tuner does. A capped link (tc tbf) also has a bucket: the bytes it saved up
while the link was idle (each step's compute, each evaluation) leave at the line's speed, not the rate.
"""
import math
import re
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


def adascale_gain(b_simple, base_batch, batch):
    """AdaScale's gain r at scale batch/base_batch from the noise scale (Johnson et al. 2020, with
    sigma^2 = tr(Sigma)/base_batch and mu^2 = |G|^2): r = (sigma^2 + mu^2) / (sigma^2/S + mu^2), the
    base-batch steps of progress one step of `batch` makes."""
    return (b_simple / base_batch + 1) / (b_simple / batch + 1)


# --- the modes ---------------------------------------------------------------------------------------
# Every way gradients travel that the planner searches, the one list the sweep, the benchmarks, the plan
# and the report read. "powersgd:R": PowerSGD of rank R; "local:H": local SGD averaging every H steps.
MODES = ("none", "fp16", "bf16", "powersgd:1", "powersgd:2", "powersgd:4", "local:4", "local:16")


def is_local_sgd(mode):
    return mode.startswith("local:")


def mode_label(mode):
    """How the report names a mode: "powersgd r2", "local SGD H=16"."""
    kind, _, value = mode.partition(":")
    return {"powersgd": f"powersgd r{value}", "local": f"local SGD H={value}"}.get(kind, mode)


def mode_overrides(mode, start_step):
    """The config keys that run `mode` from `start_step` (comm.compression_start_step or
    comm.local_sgd_start_step): the steps before it exchange float32 gradients, as a plain run."""
    kind, _, value = mode.partition(":")
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}' (modes: {', '.join(MODES)})")
    if mode == "none":
        return []
    if kind == "local":
        return [f"comm.local_sgd_period={value}", f"comm.local_sgd_start_step={start_step}"]
    rank = [f"comm.powersgd_rank={value}"] if kind == "powersgd" else []
    return [f"comm.compression={kind}", *rank, f"comm.compression_start_step={start_step}"]


# --- the throughput model --------------------------------------------------------------------------


def ring_allreduce_seconds(ranks, message_bytes, alpha, beta):
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * message_bytes * beta


def tree_allreduce_seconds(ranks, message_bytes, alpha, beta):
    if ranks <= 1:
        return 0.0
    return 2 * math.ceil(math.log2(ranks)) * alpha + 2 * message_bytes * beta


def allreduce_costs(ranks, message_bytes, network):
    """(seconds, bytes on each link) of the faster of ring and tree on `network` ({"alpha": s, "beta": s/byte})."""
    a, b = network["alpha"], network["beta"]
    ring = (ring_allreduce_seconds(ranks, message_bytes, a, b), 2 * (ranks - 1) / ranks * message_bytes)
    tree = (tree_allreduce_seconds(ranks, message_bytes, a, b), 2 * message_bytes)
    return min(ring, tree)


def allreduce_seconds(ranks, message_bytes, network):
    return allreduce_costs(ranks, message_bytes, network)[0] if ranks > 1 else 0.0


def fit_line(xs, ys):
    """(intercept, slope) of a least-squares line."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def fit_line_relative(xs, ys):
    """(intercept, slope) of the line a + b·x with the least sum of squared relative errors
    ((a + b·x - y) / y)^2: a weighted least-squares line, weights 1/y^2. An intercept that would be
    negative is held at 0."""
    w = [1 / y ** 2 for y in ys]
    total = sum(w)
    mx, my = sum(wi * x for wi, x in zip(w, xs)) / total, sum(wi * y for wi, y in zip(w, ys)) / total
    slope = sum(wi * (x - mx) * (y - my) for wi, x, y in zip(w, xs, ys)) / sum(wi * (x - mx) ** 2 for wi, x in zip(w, xs))
    if my - slope * mx >= 0:
        return my - slope * mx, slope
    ratios = [x / y for x, y in zip(xs, ys)]
    return 0.0, sum(ratios) / sum(r * r for r in ratios)


def measured_at(points, size):
    """A measured table's time at `size` bytes, log-log interpolated between its sizes (its first or
    last time outside them, scaled by the bytes beyond the last). points: [(bytes, seconds)] sorted."""
    if size <= points[0][0]:
        return points[0][1]
    if size >= points[-1][0]:
        return points[-1][1] * size / points[-1][0]
    for (m0, t0), (m1, t1) in zip(points, points[1:]):
        if m0 <= size <= m1:
            f = math.log(size / m0) / math.log(m1 / m0)
            return math.exp(math.log(t0) + f * math.log(t1 / t0))
    raise AssertionError("unreachable")


def fit_alpha_beta(message_bytes, seconds, ranks, sizes=None):
    """(alpha, beta) of a ring all-reduce over `ranks`, fitted to a ddp-bench-comm table where this model
    prices messages: at each size it sends (`sizes`, default sizes_sent(); the table log-log
    interpolated there), with each size's relative error counting the same. An unweighted line over
    8 B-4 MB is the large sizes' line: it overpriced the 407 KB all-reduce by 60-94% and PowerSGD's few
    KB up to 10x."""
    points = sorted(zip(message_bytes, seconds))
    xs = sorted(sizes or sizes_sent())
    intercept, slope = fit_line_relative(xs, [measured_at(points, m) for m in xs])
    return intercept / (2 * (ranks - 1)), slope / (2 * (ranks - 1) / ranks)


def fit_capped_link(message_bytes, seconds, ranks, burst_bytes, line):
    """A link capped by a token bucket (tc tbf: a rate, and a burst that leaves at the line's speed) from
    its ddp-bench-comm table: beta, the rate, from the messages whose bytes on the link exceed twice the
    bucket (back to back, as the benchmark sends them, they drain it and pass at the rate; smaller ones
    ride it); alpha and the line's speed from `line`, the same link uncapped (tbf adds no latency)."""
    wire = 2 * (ranks - 1) / ranks
    rates = [(t - 2 * (ranks - 1) * line["alpha"]) / (wire * m) for m, t in zip(message_bytes, seconds)
             if wire * m > 2 * burst_bytes]
    if not rates:
        raise ValueError(f"no message larger than twice the link's {burst_bytes:.0f}-byte bucket: measure larger sizes")
    return {"alpha": line["alpha"], "beta": statistics.median(rates), "line_beta": line["beta"],
            "burst_bytes": burst_bytes}


def bucket_bytes(network, wire, idle, exchange_every=1, eval_every=0, eval_pause=None):
    """The bytes of each exchange of `wire` bytes (on each link) that a capped link (tc tbf) lets through
    at the line's speed, on average once the runs settle: its bucket (burst_bytes) fills at the rate
    (1 / beta) while the link is idle, in each step's compute (`idle` seconds) and in each evaluation
    (eval_pause seconds every eval_every steps; None: a pause that fills it), and the exchanges, every
    exchange_every steps, draw on it. Followed step by step over whole cycles until the bucket comes round
    to where it began; 0 without a bucket. Why each step's refill counts: 2 nodes at 1 Gbit/s, SimpleNN,
    evaluating every 3, 23 or 1,000 steps, both datasets, fp16 and the plain all-reduce (launch/bench-bucket,
    2026-12-06, each run's compute from the same run uncapped): this model priced the 12 capped steps
    3% off in the median (8% at most), the bucket filled by evaluations alone 35% (74%). A plain step
    there takes the rate's time for its bytes, not its compute plus that: the bucket refills in the
    compute what the exchange then sends at the line's speed (while the compute is shorter than the
    exchange at the rate and refills no more than the bucket holds). Left out: the refill during the
    exchange itself and during what an evaluation leaves after it (after_eval), and local SGD's
    averaging at each evaluation."""
    burst = network.get("burst_bytes") or 0
    if not burst or wire <= 0:
        return 0.0
    rate, idle = 1 / network["beta"], max(0.0, idle)
    cycle = math.lcm(exchange_every, eval_every) if eval_every else exchange_every
    tokens = burst
    for _ in range(100):
        began, passed = tokens, []
        for step in range(1, cycle + 1):
            tokens = min(burst, tokens + rate * idle)
            if step % exchange_every == 0:
                fast = min(tokens, wire)
                tokens -= fast
                passed.append(fast)
            if eval_every and step % eval_every == 0:
                tokens = burst if eval_pause is None else min(burst, tokens + rate * eval_pause)
        if abs(tokens - began) < 1:
            break
    return sum(passed) / len(passed)


FLAGS = 4  # the float32 flags every exchange carries (train/Replica's extra slots)


class Messages:
    """What one step of a model sends, from its parameters' shapes (as ddp-train --dry-run's `parameters`
    line lists them): its gradients, and which of them PowerSGD sends raw and which as factors, by
    src/sync/PowerSgd.cpp's rule (a tensor [n, ...] of 2 or more dimensions is the matrix n x rest, of rank
    r' = min(n, rest, r), compressed where n x rest > (n + rest) r' x min_ratio)."""

    def __init__(self, name, shapes, min_ratio=2.0):
        self.name, self.shapes, self.min_ratio = name, [tuple(s) for s in shapes], min_ratio
        self.gradient_floats = sum(math.prod(s) for s in self.shapes)

    def powersgd(self, rank):
        """(raw floats, P's floats, Q's floats) of one PowerSGD exchange at `rank`."""
        raw = p = q = 0
        for shape in self.shapes:
            n = math.prod(shape)
            if len(shape) >= 2:
                rows, cols = shape[0], n // shape[0]
                r = min(rows, cols, rank)
                if rows * cols > (rows + cols) * r * self.min_ratio:
                    p, q = p + rows * r, q + cols * r
                    continue
            raw += n
        return raw, p, q


SIMPLE_NN = Messages("simple_nn", [(128, 784), (128,), (10, 128), (10,)])


def parse_messages(dry_run_output):
    """A Messages from ddp-train --dry-run's `model` and `parameters` lines; None where they are missing."""
    model = re.search(r"^  model +(.+?): \d+ parameters", dry_run_output, re.M)
    listed = re.search(r"^  parameters +(.+)$", dry_run_output, re.M)
    if not model or not listed:
        return None
    shapes = [tuple(int(d) for d in dims.split(",")) for dims in re.findall(r"\[([\d, ]+)\]", listed.group(1))]
    return Messages(model.group(1), shapes)


def exchange_phases(mode, messages=SIMPLE_NN):
    """mode: one of MODES. Returns (phases, share): the messages of one exchange and the share of steps
    that send them (local SGD averages every H steps; its flags travel every step and are one more phase)."""
    gradients = messages.gradient_floats
    if mode == "none":
        return [[4 * (gradients + FLAGS)]], 1.0
    if mode in ("fp16", "bf16"):
        return [[2 * gradients, 4 * FLAGS]], 1.0
    kind, _, value = mode.partition(":")
    if kind == "powersgd":
        raw, p, q = messages.powersgd(int(value or 2))
        return [[4 * (raw + FLAGS), 4 * p], [4 * q]], 1.0
    if kind == "local":
        return [[4 * gradients]], 1.0 / int(value)
    raise ValueError(f"unknown exchange mode '{mode}'")


def sizes_sent(modes=MODES, messages=SIMPLE_NN):
    """Every all-reduce size the model prices: each phase of each mode (its messages' bytes added, as
    exchange_seconds adds them), and local SGD's flags."""
    sizes = {4 * FLAGS for m in modes if is_local_sgd(m)}
    for mode in modes:
        sizes |= {sum(p) for p in exchange_phases(mode, messages)[0]}
    return sorted(sizes)


def bytes_per_step(mode, messages=SIMPLE_NN):
    phases, share = exchange_phases(mode, messages)
    extra = 4 * FLAGS if is_local_sgd(mode) else 0
    return sum(sum(p) for p in phases) * share + extra


def exchange_seconds(mode, ranks, network, overhead=0.0, eval_every=0, messages=SIMPLE_NN, idle=0.0,
                     eval_pause=None):
    """One step's gradient exchange: every phase's messages (posted together: their latencies overlap,
    their bytes add up), the phases one after the other, plus `overhead` (the mode's own arithmetic).
    On a capped link what its bucket holds (bucket_bytes: refilled in each step's `idle` seconds of
    compute and arithmetic, and in each evaluation, eval_pause seconds every eval_every steps) leaves at
    the line's speed."""
    if ranks <= 1:
        return 0.0
    phases, share = exchange_phases(mode, messages)
    costs = [allreduce_costs(ranks, sum(phase), network) for phase in phases]
    tokens = bucket_bytes(network, sum(wire for _, wire in costs), idle + overhead, round(1 / share), eval_every,
                          eval_pause)
    saved_per_byte = network["beta"] - network.get("line_beta", network["beta"])
    seconds = 0.0
    for cost, wire in costs:
        fast = min(tokens, wire)
        tokens -= fast
        seconds += cost - fast * saved_per_byte
    seconds *= share
    if is_local_sgd(mode):
        seconds += allreduce_seconds(ranks, 4 * FLAGS, network)  # the flags, every step
    return seconds + overhead


def mode_overhead(overheads, mode):
    """A mode's own arithmetic a step (ddp-bench-comm --compression, less the transfer): local SGD pays
    the plain exchange's once in H steps; a mode not benchmarked, none."""
    overheads = overheads or {}
    if is_local_sgd(mode):
        return overheads.get("none", 0.0) * exchange_phases(mode)[1]
    return overheads.get(mode, 0.0)


def interpolated(points, x):
    """The line between the two points [x, y] around x (outside them: the nearest two's, carried on)."""
    points = sorted(points)
    i = next((k for k in range(1, len(points) - 1) if x <= points[k][0]), len(points) - 1)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def compute_seconds(compute, local_batch, virtual_ranks=1):
    """A process's compute for one step: its virtual ranks' micro-batches one after the other, each
    interpolated between compute["points"] ([local batch, seconds] as ddp-bench-train measured them)
    where it has them, else compute["intercept"] + compute["per_sample"] x local_batch (a preset's, or
    yours). Not one line through measured points: LeNet-5's step grows faster than its batch (16 ms at
    256, 44 ms at 512), and a line through all five went below zero at 32. Processes at once on one
    machine also wait, once a step, for the slower of them (compute["wait_points"], where measured)."""
    points = compute.get("points") or []
    wait = interpolated(compute["wait_points"], local_batch) if compute.get("wait_points") else 0.0
    if len(points) < 2:
        return virtual_ranks * (compute["intercept"] + compute["per_sample"] * local_batch) + wait
    return virtual_ranks * interpolated(points, local_batch) + wait


def eval_pause(compute, ranks):
    """Seconds an evaluation pauses a run on `ranks` ranks: compute["eval_work"] (one evaluation's
    seconds on the processes the bench measured, times their count: the ranks split the test set) over
    `ranks`; None where not measured (a pause taken to fill a capped link's bucket)."""
    work = compute.get("eval_work")
    return None if work is None else work / ranks


def step_seconds(compute, network, ranks, local_batch, virtual_ranks=1, mode="none", overhead=0.0, eval_every=0,
                 messages=SIMPLE_NN):
    busy = compute_seconds(compute, local_batch, virtual_ranks)
    return busy + exchange_seconds(mode, ranks, network, overhead, eval_every, messages, busy,
                                   eval_pause(compute, ranks))


def run_seconds(steps, start_step, plain_step, mode_step):
    """A run of `steps` steps whose mode starts at `start_step`: the steps before it are plain ones."""
    before = min(steps, start_step)
    return before * plain_step + (steps - before) * mode_step


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


# What a flag in a plan's cell says: the figure rests on more than the measurements.
FLAGS_MEANING = {"b": "the mode's steps and lr beyond the global batches it was measured at",
                 "n": "local SGD's steps measured on fewer or more ranks than these"}


class StepsModel:
    """Steps to the target at a global batch in each mode, its lr, and what measured them.
    modes: {mode: {"factor": steps over the plain ones (1 for none), "lrs": {B: the best lr measured},
    "ranks": the ranks local SGD's runs had}}; none's lrs span the global batches the sweep measured,
    and the plan leaves out the batches outside them."""

    def __init__(self, s_min, b_crit, modes, start_step, messages=SIMPLE_NN, run_start=None):
        self.s_min, self.b_crit, self.modes, self.start_step = s_min, b_crit, modes, start_step
        self.messages = messages  # what a step of the dataset's model sends
        self.run_start = run_start  # fit_run_start's {"seconds", "compute_steps"}; None: not priced
        self.batches = (min(modes["none"]["lrs"]), max(modes["none"]["lrs"]))

    def covers(self, batch):
        return self.batches[0] <= batch <= self.batches[1]

    def steps(self, mode, batch):
        return predicted_steps(self.s_min, self.b_crit, batch) * self.modes[mode]["factor"]

    def lr(self, mode, batch):
        return interpolated_lr(self.modes[mode]["lrs"], batch)[0]

    def start_seconds(self, compute_step):
        """What a run's first step costs beyond a steady one, for runs whose step computes compute_step."""
        if not self.run_start:
            return 0.0
        return self.run_start["seconds"] + self.run_start["compute_steps"] * compute_step

    def flags(self, mode, batch, ranks):
        """The flags of FLAGS_MEANING that `mode` at `batch` on `ranks` ranks earns."""
        measured = self.modes[mode]
        flags = "" if min(measured["lrs"]) <= batch <= max(measured["lrs"]) else "b"
        return flags + ("n" if is_local_sgd(mode) and measured.get("ranks") not in (None, ranks) else "")


def after_evaluations(compute, steps, eval_every):
    """What evaluating every eval_every steps leaves in the training time: compute["after_eval"] (seconds
    an evaluation, measured by launch/plan's bench; the steps after one start on caches it emptied) each."""
    return steps / eval_every * compute.get("after_eval", 0.0) if eval_every else 0.0


def run_start_of(evaluations, after_eval=0.0):
    """What a run's start cost beyond its steady steps, from its evaluations' (step, training seconds),
    evaluated every k steps from the first: the first one's time less its steps at the pace of the later
    ones. That pace holds one evaluation's after-cost (after_eval) every k steps, which the steps before
    the first did not pay: it is added back. None with fewer than 3 evaluations."""
    if len(evaluations) < 3:
        return None
    (step_1, t_1), (step_2, t_2), (step_n, t_n) = evaluations[0], evaluations[1], evaluations[-1]
    pace = (t_n - t_2) / (step_n - step_2)
    return t_1 - step_1 * pace + after_eval


def fit_run_start(points):
    """A run's start as seconds + compute_steps x its step's compute, fitted (least squares) to points
    [(compute a step, measured start)]: a fixed part (the first collective, first allocations) and one
    that grows with the step (the first touch of a larger batch's memory). Neither is held below 0."""
    if len({x for x, _ in points}) < 2:
        return None
    seconds, compute_steps = fit_line(*zip(*points))
    if compute_steps < 0:
        seconds, compute_steps = sum(y for _, y in points) / len(points), 0.0
    return {"seconds": max(0.0, seconds), "compute_steps": compute_steps, "runs": len(points)}


def scaled(compute, factor):
    """The compute `factor` times slower (a probe of the machine now against the bench's)."""
    slower = dict(compute, **{k: compute[k] * factor for k in ("intercept", "per_sample", "after_eval", "eval_work")
                              if compute.get(k) is not None})
    for key in ("points", "wait_points"):
        if compute.get(key):
            slower[key] = [[b, t * factor] for b, t in compute[key]]
    return slower


def predict(model, compute, network, ranks, local_batch, mode="none", overheads=None, virtual_ranks=1, eval_every=0):
    """Steps, mean step and time to the target of `ranks` processes of v virtual ranks at `local_batch`
    in `mode`: plain steps before the mode's start step, the mode's after, what the evaluations leave
    in the training time, and the run's start (model.start_seconds)."""
    steps = model.steps(mode, ranks * virtual_ranks * local_batch)
    plain = step_seconds(compute, network, ranks, local_batch, virtual_ranks, "none",
                         mode_overhead(overheads, "none"), eval_every, model.messages)
    step = step_seconds(compute, network, ranks, local_batch, virtual_ranks, mode, mode_overhead(overheads, mode),
                        eval_every, model.messages)
    seconds = run_seconds(steps, 0 if mode == "none" else model.start_step, plain, step) + \
        after_evaluations(compute, steps, eval_every) + \
        model.start_seconds(compute_seconds(compute, local_batch, virtual_ranks))
    return {"steps": steps, "step_seconds": seconds / steps, "seconds": seconds}


def candidate(model, compute, network, ranks, local_batch, mode, max_batch, overheads=None, eval_every=None):
    """One configuration of the plan (real ranks, no virtual), or None where its global batch lies
    outside what was measured or beyond the training set (max_batch). eval_every(global batch): the
    steps between its evaluations, as the command line that runs it sets them (their pauses refill a
    capped link's bucket, and each leaves its cost in the training time); None: none priced."""
    batch = ranks * local_batch
    if not model.covers(batch) or batch > max_batch:
        return None
    predicted = predict(model, compute, network, ranks, local_batch, mode, overheads,
                        eval_every=eval_every(batch) if eval_every else 0)
    return {"ranks": ranks, "local_batch": local_batch, "global_batch": batch, "mode": mode, **predicted,
            "samples": predicted["steps"] * batch, "efficiency": statistical_efficiency(model.b_crit, batch),
            "lr": model.lr(mode, batch), "flags": model.flags(mode, batch, ranks)}


def best_configuration(model, compute, network, ranks, local_batches, max_batch, overheads=None, eval_every=None):
    """The mode and local batch with the least predicted time to the target on `ranks` ranks (one rank
    exchanges nothing: plain only), among those whose steps were measured (no flag: the mode ran at that
    batch, local SGD on as many ranks; the plain all-reduce at every batch the model covers is), a flagged
    one only where none is; None where no global batch was measured. eval_every: as candidate's. Why: MNIST's recommendation at 1 Gbit/s on 2026-12-06 was local
    SGD H=16 at global batch 64, flagged (its factor measured at 128-1024), and took 1.25x the soonest run
    beside it, H=16 at 128, whose steps were measured."""
    modes = [m for m in model.modes if ranks > 1 or m == "none"]
    found = [candidate(model, compute, network, ranks, b, m, max_batch, overheads, eval_every)
             for m in modes for b in local_batches]
    found = [c for c in found if c]
    measured = [c for c in found if not c["flags"]]
    return min(measured or found, key=lambda c: c["seconds"]) if found else None


SCALING_WITHIN = 0.1


def scaling_limit(plans, within=SCALING_WITHIN):
    """Where adding ranks stops paying: the fewest ranks whose time is within `within` (10%) of the best
    over all rank counts. plans: the best configuration at each rank count, ascending."""
    best = min(p["seconds"] for p in plans)
    return next(p for p in plans if p["seconds"] <= best * (1 + within))


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
