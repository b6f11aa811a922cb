"""Summaries over seeds."""
import math


def mean_std(values):
    """Mean and sample standard deviation; nan for no values, std 0 for one."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def total_minutes(rows, key):
    """The sum of a seconds column over runs, in minutes (a run without the figure counts 0)."""
    return sum(float(r.get(key) or 0) for r in rows) / 60
