"""Running ddp-train from the experiment drivers (launch/study, launch/claims): one place that
knows how a run is launched (mpirun or srun, as root, beyond the cores), how its outcome is
read (ok, diverged, failed), how progress is shown, and how results are written (whole or not at
all, a failure as one line)."""
import contextlib
import errno
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launcher(ranks, kind="mpirun"):
    """The command prefix that starts `ranks` processes: mpirun on this host, or srun inside
    a Slurm allocation."""
    if kind == "srun":
        return ["srun", "--mpi=pmix", f"--ntasks={ranks}", "--kill-on-bad-exit=1"]
    prefix = ["mpirun", "-n", str(ranks)]
    if os.geteuid() == 0:
        prefix.append("--allow-run-as-root")
    cores = os.cpu_count() or 1
    prefix += ["--oversubscribe", "--bind-to", "none"] if ranks > cores else ["--bind-to", "core"]
    return prefix


def split_ranks(world, max_real_ranks):
    """world ranks as (processes, virtual ranks each): real ranks up to max_real_ranks, the rest
    simulated exactly with virtual ranks. None when world does not divide."""
    real = min(world, max_real_ranks)
    while world % real:
        real -= 1
    return real, world // real


def training_command(binary, config, overrides, ranks, run_dir, kind="mpirun"):
    """The command line of one run. kind "hosts:node1,node2": launch/mpirun over those hosts (the
    local cluster's nodes, or ssh hosts), which takes the binary from DDP_TRAIN."""
    arguments = ["--config", os.path.join(ROOT, config), *overrides, f"output.dir={run_dir}", "output.progress=false",
                 "--overwrite"]
    if kind.startswith("hosts:"):
        return ["env", f"DDP_TRAIN={binary}", os.path.join(ROOT, "launch", "mpirun"), "--hosts", kind[len("hosts:"):],
                str(ranks), *arguments]
    return launcher(ranks, kind) + [binary, *arguments]


def run_training(binary, config, overrides, ranks, run_dir, log_path, timeout_s, kind="mpirun"):
    """Runs ddp-train once into run_dir and returns (status, summary): status is "ok",
    "diverged" (it stopped on a NaN/Inf: a result, not a failure), "timeout", "exit N" or
    "no summary"; summary is summary.json's content or None."""
    cmd = training_command(binary, config, overrides, ranks, run_dir, kind)
    try:
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s)
        status, log = ("ok" if result.returncode == 0 else f"exit {result.returncode}"), result.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        status, log = "timeout", out.decode() if isinstance(out, bytes) else out
    with replacing(log_path) as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n" + log)
    summary = read_json(os.path.join(run_dir, "summary.json"))
    if status == "exit 1" and summary and summary.get("outcome") == "nonfinite":
        status = "diverged"
    elif status == "ok" and summary is None:
        status = "no summary"
    if status not in ("ok", "diverged"):
        print(f"    FAILED ({status}); continuing. {reason_of(log)} (the whole output: {log_path})", flush=True)
    return status, summary


def reason_of(log):
    """What a failed run said about why: ddp-train's own error line (the last one), not the
    launcher's report that follows it; else the last lines of the output."""
    lines = [line for line in log.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ddp-train: error:")]
    if errors:
        return errors[-1]
    return "Last output:\n" + "\n".join(lines[-3:])


def dry_run_command(binary, config, overrides, ranks, run_dir):
    """ddp-train --dry-run as `ranks` ranks would run it: one process, no launcher."""
    return [binary, "--dry-run", "--ranks", str(ranks), "--config", os.path.join(ROOT, config), *overrides,
            f"output.dir={run_dir}", "output.progress=false", "--overwrite"]


def check_runs(binary, config, runs, parallel=2):
    """Checks every run's command line with ddp-train --dry-run before any runs: runs is a list of
    (name, overrides, ranks, run_dir). Runs that differ only in train.seed are checked once (a seed
    is any integer). Returns [(name, the reason it would fail)]; empty when every run would start."""
    import concurrent.futures
    distinct = {}
    for name, overrides, ranks, run_dir in runs:
        key = (tuple(o for o in overrides if not o.startswith("train.seed=")), ranks)
        distinct.setdefault(key, (name, overrides, ranks, run_dir))

    def check(item):
        name, overrides, ranks, run_dir = item
        result = subprocess.run(dry_run_command(binary, config, overrides, ranks, run_dir), stdout=subprocess.PIPE,
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


def finished_run(binary, config, overrides, ranks, run_dir, log_path, kind="mpirun"):
    """(status, summary) of a run an earlier invocation finished with this very command line,
    or None: what `--reuse` keeps. The command line is the first line of its log (run_training
    writes it)."""
    summary = read_json(os.path.join(run_dir, "summary.json"))
    if not summary or summary.get("outcome") not in ("completed", "nonfinite") or not os.path.exists(log_path):
        return None
    with open(log_path) as f:
        first = f.readline().rstrip("\n")
    if first != " ".join(shlex.quote(c) for c in training_command(binary, config, overrides, ranks, run_dir, kind)):
        return None
    return ("ok" if summary["outcome"] == "completed" else "diverged"), summary


@contextlib.contextmanager
def replacing(path, mode="w", **open_args):
    """A file for `path`'s new content that replaces `path` (os.replace) only when the block
    completes: a failed write (a full disk) leaves the old file or none, never a partial one or
    its temporary. An OSError names `path`, also where write() itself knows no file name."""
    temporary = path + ".tmp"
    try:
        with open(temporary, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(e, OSError):
            e.filename, e.filename2 = path, None
        raise


def save_figure(fig, path):
    """A plot, written as replacing() writes."""
    with replacing(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)


def failure_line(program, error):
    """The one line an OSError becomes: the file, the system's reason, and for a full disk
    (the usual cause of a failed write of results) what to do."""
    line = f"{program}: error: " + (f"{error.filename}: {error.strerror}" if error.filename else str(error))
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        line += ("; the disk is full: free space there or choose another --out, then run again with --reuse "
                 "(runs that finished are kept)")
    return line


def exit_code_of_main(program, main):
    """main()'s exit code; an OSError (a result that cannot be written, a file that cannot be
    read) is one line on stderr and exit 1, not a traceback."""
    try:
        return main()
    except OSError as e:
        print(failure_line(program, e), file=sys.stderr, flush=True)
        return 1


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    """Every line of a JSON-lines file (metrics.jsonl, steps.jsonl); [] when it is missing."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mean_std(values):
    """Mean and sample standard deviation; nan for no values, std 0 for one."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


class Progress:
    """`[i/n] name: detail (elapsed mm:ss, ETA mm:ss)` lines, the ETA from the mean time so far."""

    def __init__(self, total):
        self.total, self.done, self.started = total, 0, time.time()

    def start(self, name, detail=""):
        elapsed = time.time() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        print(f"[{self.done + 1}/{self.total}] {name}{': ' + detail if detail else ''} "
              f"(elapsed {clock(elapsed)}, ETA {'?' if math.isnan(eta) else clock(eta)})", flush=True)
        self.done += 1

    def elapsed(self):
        return time.time() - self.started


def clock(seconds):
    return time.strftime("%M:%S", time.gmtime(seconds)) if seconds < 3600 else f"{seconds / 3600:.1f} h"


class LocalCluster:
    """The local cluster the links part runs on: the one DDP_SLURM_STATE names if it is up with enough
    nodes (its caps put back at the end), else one of its own, in namespaces and state apart from any
    other, stopped at the end."""

    def __init__(self, nodes):
        self.nodes, self.own, self.previous_cap = nodes, False, None
        self.env = dict(os.environ)

    def __enter__(self):
        if self.running():
            shown = self.script("link")
            self.previous_cap = shown.split()[1] if "Mbit/s" in shown else None
            return self
        self.own = True
        self.state = tempfile.mkdtemp(prefix="ddp-slow-links.")
        self.env.update(DDP_SLURM_STATE=self.state, DDP_CLUSTER_NAME=f"sl{os.getpid() % 100000}")
        self.script("start", "--nodes", str(self.nodes))
        return self

    def __exit__(self, *_):
        if not self.own:
            self.script("link", *(["--mbit", self.previous_cap] if self.previous_cap else ["--off"]))
            return
        subprocess.run([os.path.join(ROOT, "cluster", "stop")], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", self.state])

    def running(self):
        state = self.env.get("DDP_SLURM_STATE")
        if not state or not os.path.exists(os.path.join(state, "cluster.env")):
            return False
        with open(os.path.join(state, "cluster.env")) as f:
            layout = dict(line.strip().split("=", 1) for line in f if "=" in line)
        return int(layout.get("cluster_nodes", 0)) >= self.nodes and \
            subprocess.run([os.path.join(ROOT, "cluster", "link")], env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL).returncode == 0

    def script(self, name, *args):
        result = subprocess.run([os.path.join(ROOT, "cluster", name), *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise RuntimeError(f"cluster/{name} {' '.join(args)} failed:\n{result.stdout}")
        return result.stdout

    def cap(self, mbit):
        self.script("link", *(["--mbit", str(mbit)] if mbit else ["--off"]))

    def hosts(self):
        return ",".join(f"node{i}" for i in range(1, self.nodes + 1))
