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


def retried_clause(rows):
    """"; N runs submitted again after the cluster lost them (M retries)" from the rows' `retries`
    (a Slurm executor's count), or "" when none was: what a report's header adds."""
    again = [int(r.get("retries") or 0) for r in rows if int(r.get("retries") or 0)]
    if not again:
        return ""
    return f"; {len(again)} run{'s' if len(again) > 1 else ''} submitted again after the cluster lost " \
           f"{'them' if len(again) > 1 else 'it'} ({sum(again)} retr{'ies' if sum(again) > 1 else 'y'})"
