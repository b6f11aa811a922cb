"""Where a study's runs execute and how many at once, behind one small interface (as Hydra's
launchers and submitit's executors): a driver decides what runs and in which order and hands an
executor one phase of runs at a time; `run` returns one RunResult per run, in order, the same
object whichever executor ran it. A phase whose results a later one needs (a prediction before
the runs it predicts) is one call, so it completes before the next starts.

  Serial       one run at a time on this host: the default, and the behaviour before executors
  Concurrent   --jobs K on this host: up to K runs at once, each run's ranks bound to cores no other
               run uses (a run waits until enough are free); inside a Slurm allocation (launcher
               srun) K job steps at once, each `srun --exact`
  SlurmArrays  --slurm from a login node: each run a task of an `sbatch --array`
               (launch/ddp_study/slurm_array.py)

A run's processes and virtual ranks are the driver's, not the executor's, so a run ends with the
same parameters_crc32 whichever executor runs it; --reuse keeps a run that any of them finished.
"""
import collections
import concurrent.futures
import dataclasses
import os
import shlex
import sys

from .console import Progress
from .runs import finished_run, run_training, stop_running, training_command


@dataclasses.dataclass(frozen=True)
class Run:
    """One run as a driver plans it: what trains (binary, config, overrides), as how many processes
    (ranks; its virtual ranks are among the overrides), into which directory, for at most timeout_s,
    and how it is launched where no scheduler places it (kind: mpirun on this host, srun inside an
    allocation, or hosts:node1,node2 through launch/mpirun). detail: what its progress line says."""
    name: str
    binary: str
    config: str
    overrides: tuple
    ranks: int
    run_dir: str
    timeout_s: float = 1800
    kind: str = "mpirun"
    detail: str = ""

    @property
    def log_path(self):
        return self.run_dir + ".log"

    @property
    def nodes(self):
        return len(self.kind[len("hosts:"):].split(",")) if self.kind.startswith("hosts:") else 1

    def command(self, kind=None, cores=None, exact=False):
        return training_command(self.binary, self.config, list(self.overrides), self.ranks, self.run_dir,
                                kind or self.kind, cores, exact)

    def train(self, cores=None, exact=False):
        """Runs it here, now: (status, summary)."""
        return run_training(self.binary, self.config, list(self.overrides), self.ranks, self.run_dir, self.log_path,
                            self.timeout_s, self.kind, cores, exact)

    def finished_earlier(self):
        """(status, summary) of this run finished by an earlier invocation, or None (--reuse)."""
        return finished_run(self.binary, self.config, list(self.overrides), self.ranks, self.run_dir, self.log_path,
                            self.kind)


@dataclasses.dataclass
class RunResult:
    """What a run ended with: status ("ok", "diverged", "timeout", "exit N", "no summary", or a
    lost task's "lost (NODE_FAIL)"), summary.json's content or None, whether an earlier invocation
    finished it (--reuse), and how often a cluster lost it and it was submitted again. Unpacks as
    (status, summary)."""
    status: str
    summary: dict = None
    reused: bool = False
    retries: int = 0

    def __iter__(self):
        return iter((self.status, self.summary))


class Serial:
    """One run at a time on this host, in the driver's order."""
    def __init__(self, reuse=False):
        self.reuse = reuse

    def run(self, runs, on_result=None, progress=None):
        """Runs every run (keeping what --reuse finds finished) and returns their RunResults in order;
        on_result(run, result) is called as each result is known, progress counts them."""
        progress = progress or Progress(len(runs))
        results = [None] * len(runs)

        def finished(i, result):
            results[i] = result
            if on_result:
                on_result(runs[i], result)

        todo = []
        for i, run in enumerate(runs):
            earlier = run.finished_earlier() if self.reuse else None
            if earlier:
                progress.start(run.name, run.detail)
                print("    reused: an earlier invocation finished this command line", flush=True)
                finished(i, RunResult(*earlier, reused=True))
            else:
                todo.append((i, run))
        if todo:
            self.execute(todo, progress, finished)
        return results

    def execute(self, todo, progress, finished):
        for i, run in todo:
            progress.start(run.name, run.detail)
            finished(i, RunResult(*run.train()))


class Cores:
    """This host's cores as runs take and give them back: a run's ranks are bound to cores no other
    run uses; a run with more ranks than the host has cores waits for all of them (and then runs
    oversubscribed, unbound, as it would alone)."""

    def __init__(self, cores):
        self.all, self.free = sorted(cores), sorted(cores)

    def take(self, ranks):
        """The cores for a run of `ranks` processes, or None while too few are free."""
        wanted = min(ranks, len(self.all))
        if len(self.free) < wanted:
            return None
        taken, self.free = self.free[:wanted], self.free[wanted:]
        return taken

    def give_back(self, cores):
        self.free = sorted(self.free + cores)


def logical_cores():
    """The cores this process may use, as Open MPI's --cpu-set numbers them: hwloc's logical cores
    0..n-1 of the allowed ones (its hardware threads counted once)."""
    allowed = os.sched_getaffinity(0)
    cores = set()
    for cpu in allowed:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id") as package, \
                    open(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id") as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            cores.add(cpu)
    return list(range(len(cores) or len(allowed)))


class Concurrent(Serial):
    """Up to `jobs` runs at once on this host (mpirun runs: their ranks bound to cores of their own)
    or inside a Slurm allocation (srun runs: job steps with --exact, which Slurm holds back until the
    allocation has their CPUs free). Starts follow the driver's order."""

    def __init__(self, jobs, reuse=False, program="study", cores=None):
        super().__init__(reuse)
        self.jobs, self.program = jobs, program
        self.cores = Cores(cores if cores is not None else logical_cores())

    def cap_to_cores(self, todo):
        """No more runs at once than this host has cores when any run is bound to them, with a line."""
        if any(run.kind == "mpirun" for _, run in todo) and self.jobs > len(self.cores.all):
            print(f"{self.program}: --jobs {self.jobs}: this host has {len(self.cores.all)} cores, and each run's "
                  f"ranks need cores of their own: running at most {len(self.cores.all)} at once", flush=True)
            self.jobs = len(self.cores.all)

    def place(self, run):
        """(cores taken, the launcher's placement) for run, or None while it has to wait."""
        if run.kind == "srun":
            return [], {"exact": True}
        if run.kind != "mpirun":
            raise ValueError(f"run {run.name}: kind {run.kind} runs one at a time (Serial), not at once")
        cores = self.cores.take(run.ranks)
        if cores is None:
            return None
        return cores, {"cores": cores if run.ranks <= len(self.cores.all) else None}

    def execute(self, todo, progress, finished):
        self.cap_to_cores(todo)
        queue, running = collections.deque(todo), {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                while queue or running:
                    self.start_what_fits(queue, running, pool, progress)
                    done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in done:
                        i, run, cores = running.pop(future)
                        self.cores.give_back(cores)
                        result = RunResult(*future.result())
                        print(f"  done: {run.name}: {result.status}", flush=True)
                        finished(i, result)
            except KeyboardInterrupt:
                stop_running()  # the threads' launchers never see the interrupt
                raise

    def start_what_fits(self, queue, running, pool, progress):
        while queue and len(running) < self.jobs:
            i, run = queue[0]
            placed = self.place(run)
            if placed is None:
                return  # the next run waits for cores: later ones do not overtake it
            queue.popleft()
            cores, placement = placed
            where = f" on core{'s' if len(cores) > 1 else ''} {','.join(map(str, cores))}" if cores else ""
            progress.start(run.name, run.detail + where, in_flight=len(running))
            running[pool.submit(run.train, **placement)] = (i, run, cores)


def add_arguments(parser, note=""):
    """The flags every driver takes for where its runs execute (the same four everywhere)."""
    group = parser.add_argument_group("where the runs execute", note or None)
    group.add_argument("--jobs", type=int, metavar="K",
                       help="up to K runs at once: on this host each run's ranks bound to cores no other run uses "
                            "(K is capped at the cores); inside a Slurm allocation (launcher srun) K job steps; with "
                            "--slurm at most K array tasks at once (default: 1 here, no limit with --slurm)")
    group.add_argument("--slurm", action="store_true",
                       help="from a Slurm login node: every run a task of an sbatch --array (one array per run "
                            "shape), the results read from the shared filesystem; options from the config's slurm: "
                            "section and --slurm-args")
    group.add_argument("--slurm-args", default="", metavar="'OPTIONS'",
                       help="sbatch options for every array, after the slurm: section's "
                            "(e.g. '--partition=cpu --account=me --time=30')")
    group.add_argument("--retries", type=int, default=2, metavar="N",
                       help="with --slurm: submit a task the cluster lost (NODE_FAIL, PREEMPTED, BOOT_FAIL, its time "
                            "limit, or gone without an exit status) again, up to N times (default 2); a run that "
                            "fails by itself is not retried")


SLURM_KEYS = {"partition": str, "account": str, "time": (int, str), "array_parallelism": int, "options": list}


def check_slurm_section(section):
    """What is wrong with a config's slurm: section, or None. Keys: partition, account, time (minutes
    or Slurm's [D-]HH:MM:SS), array_parallelism (array tasks at once), options (other sbatch options)."""
    if section is None:
        return None
    if not isinstance(section, dict):
        return "slurm: must be a mapping"
    for key, value in section.items():
        if key not in SLURM_KEYS:
            return f"slurm: unknown key '{key}' (valid: {', '.join(sorted(SLURM_KEYS))})"
        if not isinstance(value, SLURM_KEYS[key]):
            return f"slurm.{key}: {value!r} has the wrong type"
    return None


def sbatch_options(section, slurm_args):
    """The sbatch options of every array: the config's slurm: section, then --slurm-args (later wins)."""
    section = section or {}
    options = [f"--{key}={section[key]}" for key in ("partition", "account", "time") if key in section]
    return options + [str(o) for o in section.get("options", [])] + shlex.split(slurm_args or "")


def from_arguments(program, args, slurm_section=None):
    """The executor the flags ask for: SlurmArrays (--slurm), Concurrent (--jobs K > 1) or Serial."""
    wrong = (f"--jobs must be at least 1, not {args.jobs}" if args.jobs is not None and args.jobs < 1 else
             f"--retries must be 0 or more, not {args.retries}" if args.retries < 0 else None)
    if wrong:
        print(f"{program}: error: {wrong}", file=sys.stderr)
        sys.exit(2)  # bad input, as the drivers' other refusals
    reuse = getattr(args, "reuse", False)
    if args.slurm:
        from .slurm_array import SlurmArrays
        return SlurmArrays(program, reuse, sbatch_options(slurm_section, args.slurm_args),
                           args.jobs or (slurm_section or {}).get("array_parallelism"), args.retries)
    if (args.jobs or 1) > 1:
        return Concurrent(args.jobs, reuse, program)
    return Serial(reuse)


def one_at_a_time(program, args, why):
    """The Serial executor for runs that must not share the machine (runs over the local cluster's
    capped links, whose times are the result), with a line saying why when the flags asked for more."""
    if args.slurm or (args.jobs or 1) > 1:
        print(f"{program}: {why}: they run one at a time whatever --jobs or --slurm say", flush=True)
    return Serial(getattr(args, "reuse", False))


def retried(results):
    """(runs retried, retries in all) after a cluster lost them, for a report's header."""
    again = [r.retries for r in results if r and r.retries]
    return len(again), sum(again)
