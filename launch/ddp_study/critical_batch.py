"""The critical batch: predicted from the gradient noise scale of small-batch runs, and observed
as the batch where a scaling rule first loses accuracy (launch/study).

McCandlish et al. 2018 (arXiv 1812.06162) find that the critical batch, beyond which a larger batch
stops cutting the steps a run needs, is about the noise scale B_noise, and that the simple noise
scale B_simple = tr(Sigma) / |G|^2 estimates it. The prediction uses only runs at the study's
smallest global batch, before any larger batch has run.
"""
import math

CHANCE = 0.1  # ten classes: a diverged run counts with the accuracy of guessing
LOSS_THRESHOLD = 0.02  # "loses more than 2 points of accuracy"


def run_noise_scale(steps):
    """B_simple over a whole run from its steps.jsonl lines: the mean of the per-step estimates of
    tr(Sigma) over the mean of those of |G|^2 (noise_trace_sigma_raw, noise_grad_sq_raw: each step's
    own unbiased estimates; lines of steps that took no measurement have null). The two are averaged
    separately, as McCandlish et al. (appendix A.1) do, because the ratio of two noisy estimates is
    biased; over the whole run, because with a fixed budget of epochs a larger batch has to keep pace
    with the small one from the first step to the last; every step weighs the same (the smoothed
    noise_* fields would weigh the first steps the most). None when the run measured nothing usable."""
    pairs = [(s["noise_trace_sigma_raw"], s["noise_grad_sq_raw"]) for s in steps
             if s.get("noise_trace_sigma_raw") is not None and s.get("noise_grad_sq_raw") is not None]
    if not pairs:
        return None
    trace = sum(t for t, _ in pairs) / len(pairs)
    grad_sq = sum(g for _, g in pairs) / len(pairs)
    if grad_sq <= 0 or trace <= 0:
        return None
    return trace / grad_sq


def predict(noise_scales):
    """The predicted critical batch: the mean of the runs' B_simple (one per seed), or None."""
    values = [b for b in noise_scales if b is not None]
    return sum(values) / len(values) if values else None


def mean_accuracy(runs):
    """Mean final test accuracy of a batch's runs, a diverged run counted as chance; nan for none.
    runs: dicts with "status" ("ok", "diverged", or a failure) and "final_test_accuracy"."""
    values = [CHANCE if r["status"] == "diverged" else float(r["final_test_accuracy"]) for r in runs
              if r["status"] == "diverged" or (r["status"] == "ok" and r.get("final_test_accuracy") not in ("", None))]
    return sum(values) / len(values) if values else float("nan")


def measured(accuracy_by_batch):
    """The batches with a result, smallest first."""
    return sorted(b for b, a in accuracy_by_batch.items() if not math.isnan(a))


def reference_accuracy(accuracy_by_batch):
    """The smallest batch's accuracy, which losses are counted from; None when that batch has no
    result or learnt nothing (chance or below): nothing can be lost from it."""
    if not accuracy_by_batch:
        return None
    accuracy = accuracy_by_batch[min(accuracy_by_batch)]
    return None if math.isnan(accuracy) or accuracy <= CHANCE else accuracy


def first_loss(accuracy_by_batch, threshold=LOSS_THRESHOLD):
    """The smallest global batch whose accuracy is more than `threshold` below the smallest batch's,
    or None. accuracy_by_batch: {global batch: mean accuracy (nan: no result, skipped)}."""
    reference = reference_accuracy(accuracy_by_batch)
    if reference is None:
        return None
    return next((b for b in measured(accuracy_by_batch)[1:] if accuracy_by_batch[b] < reference - threshold), None)


def last_held(accuracy_by_batch, threshold=LOSS_THRESHOLD):
    """The largest batch with a result below the first that lost (the largest of all when none lost);
    None without a reference accuracy."""
    if reference_accuracy(accuracy_by_batch) is None:
        return None
    lost = first_loss(accuracy_by_batch, threshold)
    return max(b for b in measured(accuracy_by_batch) if lost is None or b < lost)


def interpolated_crossing(accuracy_by_batch, threshold=LOSS_THRESHOLD):
    """Where the accuracy loss crosses `threshold` between the last batch that held and the first that
    lost, interpolating the loss linearly in log2(batch); None when no batch lost. A finer reading
    than first_loss, whose answer is only known to the sweep's spacing."""
    lost = first_loss(accuracy_by_batch, threshold)
    if lost is None:
        return None
    held, reference = last_held(accuracy_by_batch, threshold), reference_accuracy(accuracy_by_batch)
    drop_held, drop_lost = reference - accuracy_by_batch[held], reference - accuracy_by_batch[lost]
    fraction = (threshold - drop_held) / (drop_lost - drop_held)
    return 2 ** (math.log2(held) + fraction * (math.log2(lost) - math.log2(held)))


def verdict(predicted, observed, previous_batch):
    """One line comparing the prediction with the observation. The observation is only known to lie
    between the last batch that held (previous_batch) and the first that lost (observed)."""
    if predicted is None:
        return "no prediction: the smallest-batch runs measured no noise scale"
    if observed is None:
        return (f"observed: no batch lost more than {LOSS_THRESHOLD * 100:.0f} points; the prediction "
                f"({predicted:.0f}) cannot be checked against this sweep")
    ratio = observed / predicted
    within = 0.5 <= ratio <= 2
    return (f"observed / predicted = {observed} / {predicted:.0f} = {ratio:.2f}: "
            f"{'within' if within else 'NOT within'} 2x (the break lies between batch {previous_batch} "
            f"and {observed}, so the ratio is known to a factor {observed / previous_batch:.2g})")
