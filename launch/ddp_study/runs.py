"""One ddp-train run from a driver: how it is launched (mpirun on this host, srun inside a Slurm
allocation, launch/mpirun over hosts; as root, beyond the cores), how its outcome is read (ok,
diverged, failed, and why), and which earlier runs --reuse keeps."""
import os
import shlex
import subprocess

from . import ROOT
from .files import read_json, replacing


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
