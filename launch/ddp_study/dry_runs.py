"""The check before a study spends its time: every run's command line through ddp-train --dry-run
(one process, no launcher), so that a typo in one rule's overrides is refused in seconds with
ddp-train's own line instead of failing after hours."""
import concurrent.futures
import os
import re
import subprocess
import sys

from . import ROOT, planner
from .runs import reason_of, run_stoppable


def config_facts(binary, config):
    """(training samples, what a step of the config's model sends: a planner.Messages), as ddp-train
    --dry-run says; ValueError with its output where it fails."""
    result = run_stoppable([binary, "--dry-run", "--config", os.path.join(ROOT, config)], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    found = re.search(r"(\d+) train / \d+ test samples", result.stdout)
    messages = planner.parse_messages(result.stdout)
    if result.returncode != 0 or not found or not messages:
        raise ValueError(f"{config}: ddp-train --dry-run failed:\n{result.stdout}")
    return int(found.group(1)), messages


def dry_run_command(binary, config, overrides, ranks, run_dir):
    """ddp-train --dry-run as `ranks` ranks would run it: one process, no launcher."""
    return [binary, "--dry-run", "--ranks", str(ranks), "--config", os.path.join(ROOT, config), *overrides,
            f"output.dir={run_dir}", "output.progress=false", "--overwrite"]


def check_runs(binary, config, runs, parallel=2):
    """Checks every run's command line with ddp-train --dry-run before any runs: runs is a list of
    (name, overrides, ranks, run_dir). Runs that differ only in train.seed are checked once (a seed
    is any integer). Returns [(name, the reason it would fail)]; empty when every run would start."""
    distinct = {}
    for name, overrides, ranks, run_dir in runs:
        key = (tuple(o for o in overrides if not o.startswith("train.seed=")), ranks)
        distinct.setdefault(key, (name, overrides, ranks, run_dir))

    def check(item):
        name, overrides, ranks, run_dir = item
        result = run_stoppable(dry_run_command(binary, config, overrides, ranks, run_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        return None if result.returncode == 0 else (name, reason_of(result.stdout))

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        return [failure for failure in pool.map(check, distinct.values()) if failure]


def refuse_if_any_would_fail(program, binary, config, runs):
    """The check before a study spends its time: prints each run that would fail with ddp-train's
    reason and exits 2, or returns having run nothing."""
    print(f"{program}: checking {len(runs)} runs' command lines with ddp-train --dry-run", flush=True)
    failures = check_runs(binary, config, runs)
    if failures:
        for name, reason in failures[:10]:
            print(f"{program}: error: run {name} would fail: {reason}", file=sys.stderr)
        if len(failures) > 10:
            print(f"{program}: error: ... and {len(failures) - 10} more", file=sys.stderr)
        print(f"{program}: nothing was run; fix the study and run it again", file=sys.stderr)
        sys.exit(2)
