"""--slurm: a phase of a study's runs as tasks of Slurm job arrays, submitted from a login node.

Runs of one shape (processes, nodes, GPUs) share one `sbatch --array=0-N%K` of
launch/slurm/study-task.sh, since an array's tasks share their resources: the task's tasks are
the run's ranks, one CPU each, one GPU each where the run asks for device=cuda. A tasks file
written here gives each SLURM_ARRAY_TASK_ID its run; the task runs it under srun --mpi=pmix and
writes its exit status next to the run directory. The driver then reads, every few seconds:
squeue (a task's state while the controller remembers it, final states included), the status
files and summary.json (on the shared filesystem), and sacct where the cluster keeps accounting
(the local cluster keeps none). A task the cluster lost is submitted again, up to --retries times;
a run that failed by itself is a result, as on one host. Ctrl-C cancels the arrays.
"""
import dataclasses
import math
import os
import shlex
import statistics
import subprocess
import time

import yaml

from . import ROOT
from .executor import Run, RunResult, Serial
from .files import read_json, replacing
from .runs import command_line, say_if_failed, status_of

TASK_SCRIPT = os.path.join(ROOT, "launch", "slurm", "study-task.sh")
# Job states in which a task may still write its exit status (squeue's extended names).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
# Final states that are the cluster's doing, not the run's: the task is submitted again.
LOST = {"NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "TIMEOUT", "DEADLINE"}
TIMED_OUT = 124  # coreutils' timeout: the run's own time limit (timeout_s) ran out
MAX_ARRAY = 1000  # Slurm's default MaxArraySize (1001) allows indices 0..1000
POLL_S = 2.0
# A task that left the queue without an exit status may have written it where this login node does
# not see it yet (NFS caches directory entries for up to a minute); after that it never did.
LOST_AFTER_S = 60.0


def wants_gpus(run):
    """Whether the run trains on CUDA (device=cuda in its config or overrides): then one GPU a rank."""
    device = None
    try:
        with open(os.path.join(ROOT, run.config)) as f:
            device = (yaml.safe_load(f) or {}).get("device")
    except (OSError, yaml.YAMLError):
        pass
    for override in run.overrides:
        if override.startswith("device="):
            device = override.split("=", 1)[1]
    return device == "cuda"


def shape_of(run):
    """What an array's tasks share: (processes, nodes, GPUs per rank)."""
    return run.ranks, run.nodes, int(wants_gpus(run))


def decide(status_written, state, gone_for_s, lost_after_s=LOST_AFTER_S):
    """What a task's observations say: "done" (its exit status is there, whatever Slurm says),
    "waiting", "lost" (the cluster ended it: submit it again), or "cancelled" (someone cancelled it).
    state: squeue's, else sacct's, else None (no longer known); gone_for_s: how long it has been
    neither active nor done."""
    if status_written:
        return "done"
    if state in ACTIVE:
        return "waiting"
    if state in LOST:
        return "lost"
    if state == "CANCELLED":
        return "cancelled"
    # COMPLETED, FAILED or unknown without an exit status: the task script itself did not finish.
    return "lost" if gone_for_s >= lost_after_s else "waiting"


def parse_states(text):
    """{"JOB_TASK": STATE} from `squeue -o '%i %T'` or `sacct -P -o JobID,State` lines; sacct's
    "CANCELLED by 0" is CANCELLED, and a task listed twice (requeued) keeps its last state."""
    states = {}
    for line in text.splitlines():
        parts = line.replace("|", " ").split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def read_status(run):
    """A task's status file, (exit code, started, ended), or None while it has none."""
    try:
        with open(run.run_dir + ".exit") as f:
            code, started, ended = f.read().split()
        return int(code), float(started), float(ended)
    except (OSError, ValueError):
        return None


@dataclasses.dataclass
class Task:
    """A run as an array task: its place in the phase, how often it was submitted again, and where."""
    index: int
    run: Run
    retries: int = 0
    job: str = ""  # JOB_TASK as squeue names it
    submitted_at: float = 0.0
    gone_since: float = None


class SlurmArrays(Serial):
    """Runs as tasks of sbatch --array jobs, from a login node: see the module's description."""
    def __init__(self, program, reuse=False, options=(), parallelism=None, retries=2, poll_s=POLL_S):
        super().__init__(reuse)
        self.program, self.options, self.parallelism, self.retries = program, list(options), parallelism, retries
        self.poll_s, self.arrays, self.costs, self.sbatch_seconds, self.collected = poll_s, [], [], [], []

    def execute(self, todo, progress, finished):
        tasks = [Task(i, run) for i, run in todo]
        self.slurm_dir = os.path.join(os.path.dirname(tasks[0].run.run_dir), "slurm")
        os.makedirs(self.slurm_dir, exist_ok=True)
        try:
            self.wait(self.submit(tasks), progress, finished)
        except KeyboardInterrupt:
            self.cancel()
            raise
        self.say_costs()

    # --- submitting -----------------------------------------------------------------------------

    def submit(self, tasks):
        """One array per shape (and per MAX_ARRAY tasks); returns the tasks, each with its JOB_TASK."""
        by_shape = {}
        for task in tasks:
            by_shape.setdefault(shape_of(task.run), []).append(task)
        for shape, group in by_shape.items():
            for first in range(0, len(group), MAX_ARRAY):
                self.submit_array(shape, group[first:first + MAX_ARRAY])
        return tasks

    def submit_array(self, shape, tasks):
        path = os.path.join(self.slurm_dir, f"{self.program}-{int(time.time() * 1000)}-{len(self.arrays)}.tasks")
        with replacing(path) as f:
            for task in tasks:
                f.write(self.task_line(task.run) + "\n")
        for task in tasks:  # what an earlier attempt left must not pass for this one's result
            for stale in (task.run.run_dir + ".exit", os.path.join(task.run.run_dir, "summary.json")):
                if os.path.exists(stale):
                    os.remove(stale)
        started = time.time()
        job = self.slurm(self.sbatch_command(shape, tasks, path)).strip().split(";")[0]
        self.sbatch_seconds.append(time.time() - started)
        self.arrays.append(job)
        for k, task in enumerate(tasks):
            task.job, task.submitted_at, task.gone_since = f"{job}_{k}", time.time(), None
        print(f"{self.program}: submitted {len(tasks)} runs of {shape[0]} ranks on {shape[1]} node(s)"
              f"{' with a GPU each' if shape[2] else ''} as Slurm array {job}", flush=True)

    def task_line(self, run):
        """The tasks file's line for a run: its log, status file, time limit, the log's first line
        and the command (srun in the task's allocation), shell-quoted for the task script."""
        cmd = run.command(kind="srun")
        if run.nodes > 1:
            cmd.insert(1, f"--nodes={run.nodes}")
        fields = [run.log_path, run.run_dir + ".exit", str(int(math.ceil(run.timeout_s))), command_line(cmd), *cmd]
        return " ".join(shlex.quote(field) for field in fields)

    def sbatch_command(self, shape, tasks, tasks_file):
        ranks, nodes, gpus = shape
        minutes = int(math.ceil(max(t.run.timeout_s for t in tasks) / 60)) + 5  # the run's own limit comes first
        array = f"0-{len(tasks) - 1}" + (f"%{self.parallelism}" if self.parallelism else "")
        return (["sbatch", "--parsable", f"--array={array}", f"--job-name={self.program}", f"--nodes={nodes}",
                 f"--ntasks={ranks}", f"--ntasks-per-node={ranks // nodes}", "--cpus-per-task=1", "--no-requeue",
                 f"--time={minutes}", f"--output={os.path.join(self.slurm_dir, '%A_%a.out')}"]
                + (["--gpus-per-task=1"] if gpus else []) + self.options + [TASK_SCRIPT, tasks_file])

    def slurm(self, cmd):
        result = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
        return result.stdout

    def cancel(self):
        if self.arrays:
            subprocess.run(["scancel", *self.arrays], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"{self.program}: cancelled Slurm arrays {', '.join(self.arrays)}", flush=True)

    # --- waiting and collecting -----------------------------------------------------------------

    def wait(self, tasks, progress, finished):
        outstanding, shown = {t.job: t for t in tasks}, None
        while outstanding:
            time.sleep(self.poll_s)
            states = self.states(outstanding)
            if states is None:
                continue  # the controller did not answer: ask again
            again = []
            for job, task in list(outstanding.items()):
                verdict = self.verdict(task, states.get(job))
                if verdict == "waiting":
                    continue
                del outstanding[job]
                why = states.get(job) or "gone without an exit status"
                if verdict == "lost" and task.retries < self.retries:
                    task.retries += 1
                    print(f"    {task.run.name}: lost to the cluster ({why}); submitting it again ({task.retries} of "
                          f"{self.retries})", flush=True)
                    again.append(task)
                    continue
                result = self.collect(task) if verdict == "done" else \
                    RunResult("cancelled in Slurm" if verdict == "cancelled" else f"lost ({why})", retries=task.retries)
                progress.finish(task.run.name, f"{task.run.detail}: {result.status}")
                finished(task.index, result)
            outstanding.update({t.job: t for t in self.submit(again)} if again else {})
            shown = self.show(progress, outstanding, states, shown)

    def states(self, outstanding):
        """{JOB_TASK: state} from squeue (finished tasks too while the controller remembers them),
        completed by sacct for tasks squeue no longer knows; None if the controller did not answer."""
        arrays = ",".join(sorted({job.split("_")[0] for job in outstanding}))
        result = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", arrays, "-o", "%i %T"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if result.returncode != 0 and "Invalid job id" not in result.stderr:
            return None
        states = parse_states(result.stdout if result.returncode == 0 else "")
        if any(job not in states and read_status(t.run) is None for job, t in outstanding.items()):
            accounting = subprocess.run(["sacct", "-n", "-P", "-X", "-j", arrays, "-o", "JobID,State"], text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            if accounting.returncode == 0:  # no accounting (the local cluster): sacct says it is disabled
                states = {**parse_states(accounting.stdout), **states}
        return states

    def verdict(self, task, state):
        status = read_status(task.run)
        if status is None and state not in ACTIVE:
            task.gone_since = task.gone_since or time.time()
        elif state in ACTIVE:
            task.gone_since = None
        return decide(status is not None, state, time.time() - (task.gone_since or time.time()))

    def collect(self, task):
        """The run's RunResult from its status file and summary.json, as run_training reads a run."""
        code, started, ended = read_status(task.run)
        summary = read_json(os.path.join(task.run.run_dir, "summary.json"))
        status = status_of(None if code == TIMED_OUT else code, summary)
        try:
            with open(task.run.log_path, errors="replace") as f:
                log = f.read()
        except OSError:
            log = ""
        say_if_failed(status, log, task.run.log_path)
        own = (summary or {}).get("wall_seconds")
        self.costs.append((task.submitted_at, started, ended, own, task.job.split("_")[0]))
        self.collected.append(time.time() - ended)
        return RunResult(status, summary, retries=task.retries)

    def show(self, progress, outstanding, states, shown):
        """A line when the counts of running and pending tasks change."""
        counts = {}
        for job in outstanding:
            state = states.get(job, "gone")
            counts[state] = counts.get(state, 0) + 1
        line = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
        if outstanding and line != shown:
            progress.state(line)
        return line

    def say_costs(self):
        """What Slurm added to the runs (medians): sbatch, the wait from submission to the start of an
        array's first task (a slot free) and of any task (queued behind others), the time a task took
        beyond its run's own (srun's launch included), and the wait to be collected after its end."""
        if not self.costs:
            return
        first = {}
        for submitted, started, _, _, job in self.costs:
            first[job] = min(first.get(job, started - submitted), started - submitted)
        waits = [started - submitted for submitted, started, _, _, _ in self.costs]
        beyond = [ended - started - own for _, started, ended, own, _ in self.costs if own is not None]
        print(f"{self.program}: Slurm: {len(self.costs)} runs in {len(self.arrays)} arrays; medians: sbatch "
              f"{statistics.median(self.sbatch_seconds):.2f} s, first task of an array started "
              f"{statistics.median(first.values()):.1f} s after submission (any task "
              f"{statistics.median(waits):.1f} s), "
              f"a task took {statistics.median(beyond) if beyond else float('nan'):.1f} s beyond its run's own, "
              f"collected {statistics.median(self.collected):.1f} s after its end", flush=True)
