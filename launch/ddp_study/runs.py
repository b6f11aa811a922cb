"""One ddp-train run from a driver: how it is launched (mpirun on this host, srun inside a Slurm
allocation, launch/mpirun over hosts; as root, beyond the cores, on the cores an executor gives it),
how its outcome is read (ok, diverged, failed, and why), and which earlier runs --reuse keeps."""
import os
import shlex
import signal
import subprocess
import threading

from . import ROOT
from .files import read_json, replacing


def launcher(ranks, kind="mpirun", cores=None, exact=False):
    """The command prefix that starts `ranks` processes: mpirun on this host, or srun inside
    a Slurm allocation. cores: the cores this run may use while others run beside it (its ranks
    are bound to them); exact: a job step that takes only its own CPUs, so that steps run at once."""
    if kind == "srun":
        return ["srun", "--mpi=pmix", f"--ntasks={ranks}", "--kill-on-bad-exit=1"] + \
            (["--exact", "--cpus-per-task=1"] if exact else [])
    prefix = ["mpirun", "-n", str(ranks)]
    if os.geteuid() == 0:
        prefix.append("--allow-run-as-root")
    if cores:  # Open MPI's logical core numbers; rank i on the i-th of them
        return prefix + ["--cpu-set", ",".join(map(str, cores)), "--bind-to", "cpu-list:ordered"]
    machine = os.cpu_count() or 1
    prefix += ["--oversubscribe", "--bind-to", "none"] if ranks > machine else ["--bind-to", "core"]
    return prefix


def split_ranks(world, max_real_ranks):
    """world ranks as (processes, virtual ranks each): real ranks up to max_real_ranks, the rest
    simulated exactly with virtual ranks. None when world does not divide."""
    real = min(world, max_real_ranks)
    while world % real:
        real -= 1
    return real, world // real


def training_command(binary, config, overrides, ranks, run_dir, kind="mpirun", cores=None, exact=False):
    """The command line of one run. kind "hosts:node1,node2": launch/mpirun over those hosts (the
    local cluster's nodes, or ssh hosts), which takes the binary from DDP_TRAIN."""
    arguments = ["--config", os.path.join(ROOT, config), *overrides, f"output.dir={run_dir}", "output.progress=false",
                 "--overwrite"]
    if kind.startswith("hosts:"):
        return ["env", f"DDP_TRAIN={binary}", os.path.join(ROOT, "launch", "mpirun"), "--hosts", kind[len("hosts:"):],
                str(ranks), *arguments]
    return launcher(ranks, kind, cores, exact) + [binary, *arguments]


def command_line(cmd):
    """A command as the first line of a run's log writes it."""
    return " ".join(shlex.quote(c) for c in cmd)


def run_identity(line):
    """What a logged command line ran, whatever launched it: (processes, nodes, binary, the
    trainer's arguments). mpirun -n R (bound to any cores), srun --ntasks=R (a job step, an array
    task) and launch/mpirun --hosts H R give the same identity to the same run; None if the line
    is none of them."""
    try:
        tokens = shlex.split(line)
        at = tokens.index("--config")
    except ValueError:
        return None
    launch, arguments = tokens[:at], tokens[at:]
    if "--hosts" in launch:  # env DDP_TRAIN=B launch/mpirun --hosts H R
        binary = next((t.split("=", 1)[1] for t in launch if t.startswith("DDP_TRAIN=")), None)
        return int(launch[-1]), len(launch[launch.index("--hosts") + 1].split(",")), binary, tuple(arguments)
    ranks = next((t.split("=", 1)[1] for t in launch if t.startswith("--ntasks=")), None)
    if ranks is None and "-n" in launch:
        ranks = launch[launch.index("-n") + 1]
    nodes = next((t.split("=", 1)[1] for t in launch if t.startswith("--nodes=")), 1)
    return int(ranks or 1), int(nodes), launch[-1] if launch else None, tuple(arguments)


def status_of(returncode, summary):
    """A run's status from its exit code (None: it timed out) and summary.json: "ok", "diverged"
    (it stopped on a NaN/Inf: a result, not a failure), "timeout", "exit N" or "no summary"."""
    if returncode is None:
        return "timeout"
    if returncode == 1 and summary and summary.get("outcome") == "nonfinite":
        return "diverged"
    if returncode == 0:
        return "ok" if summary is not None else "no summary"
    return f"exit {returncode}"


def say_if_failed(status, log, log_path):
    if status not in ("ok", "diverged"):
        print(f"    FAILED ({status}); continuing. {reason_of(log)} (the whole output: {log_path})", flush=True)


# The launchers running now, so that an interrupted driver stops them (the threads of an executor
# never see the KeyboardInterrupt: their children would train on).
_running, _running_lock = set(), threading.Lock()


def stop_running():
    """Stops every run still going: an interrupted driver's threads never see the interrupt."""
    with _running_lock:
        processes = list(_running)
    for process in processes:
        stop(process)


def stop(process):
    """SIGTERM first (mpirun and srun pass it to the ranks, where SIGKILL would leave them running),
    SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def run_stoppable(cmd, **popen):
    """subprocess.run(cmd) whose child stops with the driver: on an interrupt (Ctrl-C, or SIGTERM through
    console.exit_code_of_main) it gets stop()'s SIGTERM, where subprocess.run would SIGKILL it, and an
    mpirun so killed leaves its ranks training, a launch/plan its cluster's namespaces."""
    with subprocess.Popen(cmd, **popen) as process:
        try:
            out, err = process.communicate()
        except BaseException:
            stop(process)
            raise
    return subprocess.CompletedProcess(cmd, process.returncode, out, err)


def launch_and_log(cmd, log_path, timeout_s):
    """Runs cmd with its output in log_path (the command line first): its exit code, None if it
    ran past timeout_s, and the output."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        with _running_lock:
            _running.add(process)
        try:
            log, returncode = process.communicate(timeout=timeout_s)[0], process.returncode
        except subprocess.TimeoutExpired:
            stop(process)
            log, returncode = process.communicate()[0], None
        except BaseException:  # Ctrl-C: the run stops with the driver
            stop(process)
            raise
        finally:
            with _running_lock:
                _running.discard(process)
    with replacing(log_path) as f:
        f.write(command_line(cmd) + "\n" + (log or ""))
    return returncode, log or ""


def run_training(binary, config, overrides, ranks, run_dir, log_path, timeout_s, kind="mpirun", cores=None,
                 exact=False):
    """Runs ddp-train once into run_dir and returns (status, summary): status as status_of says;
    summary is summary.json's content or None."""
    cmd = training_command(binary, config, overrides, ranks, run_dir, kind, cores, exact)
    returncode, log = launch_and_log(cmd, log_path, timeout_s)
    summary = read_json(os.path.join(run_dir, "summary.json"))
    status = status_of(returncode, summary)
    say_if_failed(status, log, log_path)
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
    and a Slurm array task write it); it is compared by run_identity, so a run finished by any
    executor (one at a time, bound to cores, a job step, an array task) is kept."""
    summary = read_json(os.path.join(run_dir, "summary.json"))
    if not summary or summary.get("outcome") not in ("completed", "nonfinite") or not os.path.exists(log_path):
        return None
    with open(log_path) as f:
        first = f.readline().rstrip("\n")
    expected = command_line(training_command(binary, config, overrides, ranks, run_dir, kind))
    if run_identity(first) is None or run_identity(first) != run_identity(expected):
        return None
    return ("ok" if summary["outcome"] == "completed" else "diverged"), summary
