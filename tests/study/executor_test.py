#!/usr/bin/python3
"""launch/ddp_study's executors (CTest study_executor): a run's identity whatever launched it (what
--reuse compares), the cores runs take on one host and the runs at once they allow (against a
stand-in mpirun that records where each run ran), and the Slurm executor's reading of task states,
its retry decision, its sbatch command lines and the task script's status file; and a driver stopped by
SIGTERM, or by a SIGINT it came in ignoring, stopping its runs."""
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch"))
from ddp_study import ROOT, console, executor, runs, slurm_array, stats  # noqa: E402
from ddp_study.executor import Run, RunResult  # noqa: E402


def a_run(run_dir, ranks=1, kind="mpirun", overrides=("lr.rule=linear",), name=None):
    return Run(name or os.path.basename(run_dir), "/b/ddp-train", "configs/mnist.yaml", tuple(overrides), ranks,
               run_dir, 60, kind)


class Identity(unittest.TestCase):
    """--reuse keeps a run whichever executor finished it: every launch of one run has one identity."""

    def test_every_launcher_of_a_run_gives_it_one_identity(self):
        run = a_run("/r/x", ranks=2)
        logged = [runs.command_line(c) for c in (run.command(), run.command(cores=[0, 1]), run.command(kind="srun"),
                                                 run.command(kind="srun", exact=True))]
        logged.append(runs.shlex.split(slurm_array.SlurmArrays("t").task_line(run))[3])  # an array task's first line
        arguments = tuple(run.command()[run.command().index("--config"):])
        self.assertEqual({runs.run_identity(line) for line in logged}, {(2, 1, "/b/ddp-train", arguments)})

    def test_other_overrides_ranks_or_nodes_are_another_run(self):
        same = runs.run_identity(runs.command_line(a_run("/r/x", 2).command()))
        for other in (a_run("/r/x", 2, overrides=("lr.rule=sqrt",)), a_run("/r/x", 1),
                      a_run("/r/x", 2, kind="hosts:node1,node2")):
            self.assertNotEqual(runs.run_identity(runs.command_line(other.command())), same)

    def test_a_line_that_is_no_run_has_no_identity(self):
        self.assertIsNone(runs.run_identity("echo hello"))
        self.assertIsNone(runs.run_identity("unbalanced 'quote"))

    def test_a_run_finished_by_a_slurm_task_is_kept_by_one_at_a_time(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        run = a_run(os.path.join(directory, "run"), ranks=2)
        os.mkdir(run.run_dir)
        with open(os.path.join(run.run_dir, "summary.json"), "w") as f:
            json.dump({"outcome": "completed", "parameters_crc32": 7}, f)
        with open(run.log_path, "w") as f:  # what study-task.sh writes: the srun line first
            f.write(runs.command_line(run.command(kind="srun")) + "\noutput\n")
        self.assertEqual(run.finished_earlier(), ("ok", {"outcome": "completed", "parameters_crc32": 7}))


class CoresOfTheirOwn(unittest.TestCase):
    def test_a_run_takes_as_many_cores_as_ranks_and_waits_when_too_few_are_free(self):
        cores = executor.Cores([0, 1, 2])
        self.assertEqual(cores.take(2), [0, 1])
        self.assertIsNone(cores.take(2))
        self.assertEqual(cores.take(1), [2])
        cores.give_back([0, 1])
        self.assertEqual(cores.free, [0, 1])

    def test_more_ranks_than_cores_waits_for_all_of_them_and_runs_unbound(self):
        pool = executor.Concurrent(2, cores=[0, 1])
        run = a_run("/r/big", ranks=4)
        self.assertEqual(pool.place(run), ([0, 1], {"cores": None}))
        self.assertIsNone(pool.place(a_run("/r/small")))
        self.assertIn("--oversubscribe", runs.launcher(4, cores=None))

    def test_this_hosts_cores_are_counted_once_per_core(self):
        self.assertEqual(executor.logical_cores(), list(range(len(executor.logical_cores()))))
        self.assertLessEqual(len(executor.logical_cores()), len(os.sched_getaffinity(0)))

    def test_bound_ranks_use_the_cores_they_were_given(self):
        self.assertEqual(runs.launcher(2, cores=[2, 3])[-4:], ["--cpu-set", "2,3", "--bind-to", "cpu-list:ordered"])
        self.assertEqual(runs.launcher(2, "srun", exact=True)[-2:], ["--exact", "--cpus-per-task=1"])


FAKE_MPIRUN = """#!/usr/bin/python3
# A stand-in for mpirun: records when and on which cores a run ran, then writes its summary.json.
import json, os, sys, time
args = sys.argv[1:]
cores = args[args.index("--cpu-set") + 1] if "--cpu-set" in args else "any"
run_dir = next(a.split("=", 1)[1] for a in args if a.startswith("output.dir="))
start = time.time()
time.sleep(0.4)
os.makedirs(run_dir, exist_ok=True)
with open(os.path.join(os.environ["RECORD"]), "a") as f:
    f.write(json.dumps({"run": os.path.basename(run_dir), "cores": cores, "start": start, "end": time.time()}) + "\\n")
with open(os.path.join(run_dir, "summary.json"), "w") as f:
    json.dump({"outcome": "completed", "parameters_crc32": len(run_dir)}, f)
"""


class RunsAtOnce(unittest.TestCase):
    """Concurrent against a stand-in mpirun: at most K at once, never two on one core, results in order."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        mpirun = os.path.join(self.dir, "mpirun")
        with open(mpirun, "w") as f:
            f.write(FAKE_MPIRUN)
        os.chmod(mpirun, os.stat(mpirun).st_mode | stat.S_IEXEC)
        self.record = os.path.join(self.dir, "record.jsonl")
        patcher = mock.patch.dict(os.environ, {"PATH": self.dir + os.pathsep + os.environ["PATH"],
                                               "RECORD": self.record})
        patcher.start()
        self.addCleanup(patcher.stop)

    def run_all(self, pool, ranks):
        planned = [a_run(os.path.join(self.dir, f"run{k}"), ranks=r) for k, r in enumerate(ranks)]
        out = io.StringIO()
        with redirect_stdout(out):
            results = pool.run(planned)
        with open(self.record) as f:
            return planned, results, [json.loads(line) for line in f], out.getvalue()

    def test_at_most_k_at_once_each_on_cores_no_other_run_uses(self):
        planned, results, ran, out = self.run_all(executor.Concurrent(2, cores=[0, 1]), [1, 1, 2, 1, 1])
        self.assertEqual([r.status for r in results], ["ok"] * 5)
        self.assertEqual([r.summary["parameters_crc32"] for r in results], [len(r.run_dir) for r in planned])
        for a in ran:
            overlapping = [b for b in ran if b is not a and b["start"] < a["end"] and a["start"] < b["end"]]
            self.assertLessEqual(len(overlapping), 1, ran)
            for b in overlapping:
                self.assertFalse(set(a["cores"].split(",")) & set(b["cores"].split(",")), (a, b))
        self.assertIn("(2 in flight, ", out)
        self.assertEqual(next(r["cores"] for r in ran if r["run"] == "run2"), "0,1")

    def test_more_jobs_than_cores_is_capped_with_a_line(self):
        pool = executor.Concurrent(5, program="study", cores=[0, 1])
        _, results, _, out = self.run_all(pool, [1, 1, 1])
        self.assertIn("study: --jobs 5: this host has 2 cores", out)
        self.assertEqual(pool.jobs, 2)
        self.assertEqual(len(results), 3)


class TaskStates(unittest.TestCase):
    """What the Slurm executor concludes from squeue, sacct and a task's status file."""

    def test_the_status_file_decides_whatever_slurm_says(self):
        for state in ("RUNNING", "NODE_FAIL", "COMPLETED", None):
            self.assertEqual(slurm_array.decide(True, state, 0), "done")

    def test_the_clusters_losses_are_retried_and_a_cancel_is_not(self):
        for state in ("NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "TIMEOUT"):
            self.assertEqual(slurm_array.decide(False, state, 0), "lost")
        self.assertEqual(slurm_array.decide(False, "CANCELLED", 0), "cancelled")
        for state in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING"):
            self.assertEqual(slurm_array.decide(False, state, 999), "waiting")

    def test_gone_without_a_status_file_is_lost_only_after_the_shared_filesystem_had_time(self):
        self.assertEqual(slurm_array.decide(False, None, 5, lost_after_s=60), "waiting")
        self.assertEqual(slurm_array.decide(False, "COMPLETED", 61, lost_after_s=60), "lost")

    def test_squeue_and_sacct_lines_are_read_alike(self):
        self.assertEqual(slurm_array.parse_states("12_0 RUNNING\n12_1 PENDING\n\n"),
                         {"12_0": "RUNNING", "12_1": "PENDING"})
        self.assertEqual(slurm_array.parse_states("12_0|CANCELLED by 0\n12_1|NODE_FAIL\n12_1|COMPLETED\n"),
                         {"12_0": "CANCELLED", "12_1": "COMPLETED"})


class SlurmArraysAgainstAFakeCluster(unittest.TestCase):
    """The executor's loop with sbatch and squeue answered here: a task the cluster loses is submitted
    again and counted, a run that fails by itself is not, and retries run out."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.submitted = []

    def fake_sbatch(self, cmd):
        self.submitted.append(cmd)
        return f"{100 + len(self.submitted)}\n"

    def finish(self, run, code, outcome="completed"):
        os.makedirs(run.run_dir, exist_ok=True)
        with open(os.path.join(run.run_dir, "summary.json"), "w") as f:
            json.dump({"outcome": outcome}, f)
        with open(run.log_path, "w") as f:
            f.write("srun ...\nddp-train: error: bad\n")
        with open(run.run_dir + ".exit", "w") as f:
            f.write(f"{code} {time.time()} {time.time()}\n")

    def test_lost_tasks_are_resubmitted_up_to_retries_and_failures_are_results(self):
        planned = [a_run(os.path.join(self.dir, name)) for name in ("fine", "lost-once", "broken", "always-lost")]
        fine, lost_once, broken, always_lost = planned
        arrays = slurm_array.SlurmArrays("t", retries=1, poll_s=0)
        polls = []

        def states(outstanding):
            polls.append(sorted(outstanding))
            if len(polls) == 1:
                self.finish(fine, 0)
                self.finish(broken, 2)
            if len(polls) == 2:
                self.finish(lost_once, 0)
            return {job: "NODE_FAIL" for job, task in outstanding.items()
                    if task.run in (always_lost,) or (task.run is lost_once and len(polls) == 1)}

        with mock.patch.object(arrays, "slurm", self.fake_sbatch), mock.patch.object(arrays, "states", states), \
                redirect_stdout(io.StringIO()) as out:
            results = arrays.run(planned)
        self.assertEqual([r.status for r in results], ["ok", "ok", "exit 2", "lost (NODE_FAIL)"])
        self.assertEqual([r.retries for r in results], [0, 1, 0, 1])
        self.assertEqual(len(self.submitted), 2)  # the first array, then one for the two lost tasks
        self.assertEqual(self.submitted[1][2], "--array=0-1")
        self.assertIn("lost-once: lost to the cluster (NODE_FAIL); submitting it again (1 of 1)", out.getvalue())
        self.assertEqual(stats.retried_clause([{"retries": r.retries} for r in results]),
                         "; 2 runs submitted again after the cluster lost them (2 retries)")

    def test_one_array_per_shape_with_its_resources_and_the_users_options_last(self):
        arrays = slurm_array.SlurmArrays("study", options=["--partition=cpu", "--time=10"], parallelism=3)
        arrays.slurm_dir = self.dir
        two = [a_run(os.path.join(self.dir, f"r{k}"), ranks=2) for k in range(2)]
        gpu = a_run(os.path.join(self.dir, "g"), ranks=4, overrides=("device=cuda",))
        nodes = a_run(os.path.join(self.dir, "n"), ranks=2, kind="hosts:node1,node2")
        with mock.patch.object(arrays, "slurm", self.fake_sbatch), redirect_stdout(io.StringIO()):
            arrays.submit([slurm_array.Task(i, r) for i, r in enumerate(two + [gpu, nodes])])
        first, second, third = self.submitted
        self.assertEqual(first[:9], ["sbatch", "--parsable", "--array=0-1%3", "--job-name=study", "--nodes=1",
                                     "--ntasks=2", "--ntasks-per-node=2", "--cpus-per-task=1", "--no-requeue"])
        self.assertEqual(first[-4:-1], ["--partition=cpu", "--time=10", slurm_array.TASK_SCRIPT])
        self.assertIn("--gpus-per-task=1", second)
        self.assertIn("--ntasks=4", second)
        self.assertIn("--nodes=2", third)
        self.assertIn("--ntasks-per-node=1", third)


class TaskScript(unittest.TestCase):
    """launch/slurm/study-task.sh: the task's line of the tasks file runs, its log begins with the
    command line, and the status file comes last with the exit code (124: the run's own limit)."""

    def run_task(self, command, limit=30):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        log, status = os.path.join(directory, "run.log"), os.path.join(directory, "run.exit")
        tasks = os.path.join(directory, "tasks")
        with open(tasks, "w") as f:
            f.write("first line\n" + " ".join(runs.shlex.quote(w) for w in
                                               [log, status, str(limit), runs.command_line(command), *command]) + "\n")
        result = subprocess.run([slurm_array.TASK_SCRIPT, tasks], env=dict(os.environ, SLURM_ARRAY_TASK_ID="1"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with open(log) as f, open(status) as g:
            return result.returncode, f.read(), g.read().split()

    def test_the_log_begins_with_the_command_line_and_the_status_holds_the_exit_code(self):
        command = ["sh", "-c", "echo \"it's here\"; exit 3"]
        code, log, status = self.run_task(command)
        self.assertEqual(code, 3)
        self.assertEqual(log, runs.command_line(command) + "\nit's here\n")
        self.assertEqual(status[0], "3")
        self.assertLessEqual(float(status[1]), float(status[2]))

    def test_the_runs_own_time_limit_is_exit_124(self):
        code, _, status = self.run_task(["sleep", "30"], limit=1)
        self.assertEqual((code, status[0]), (124, "124"))
        self.assertEqual(runs.status_of(None, None), "timeout")


class Flags(unittest.TestCase):
    def args(self, **given):
        defaults = {"jobs": None, "slurm": False, "slurm_args": "", "retries": 2, "reuse": False}
        return SimpleNamespace(**{**defaults, **given})

    def test_the_flags_pick_the_executor(self):
        self.assertIsInstance(executor.from_arguments("t", self.args()), executor.Serial)
        self.assertNotIsInstance(executor.from_arguments("t", self.args()), executor.Concurrent)
        self.assertEqual(executor.from_arguments("t", self.args(jobs=3)).jobs, 3)
        arrays = executor.from_arguments("t", self.args(slurm=True, slurm_args="--qos=short"),
                                         {"partition": "cpu", "array_parallelism": 8, "options": ["--mem=4G"]})
        self.assertEqual((arrays.options, arrays.parallelism, arrays.retries),
                         (["--partition=cpu", "--mem=4G", "--qos=short"], 8, 2))

    def test_no_jobs_or_negative_retries_are_refused_as_bad_input(self):
        for wrong in ({"jobs": 0}, {"retries": -1}):
            with redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit) as stop:
                executor.from_arguments("t", self.args(**wrong))
            self.assertEqual(stop.exception.code, 2)
            self.assertTrue(err.getvalue().startswith("t: error: --"), err.getvalue())

    def test_a_slurm_section_is_checked(self):
        self.assertIsNone(executor.check_slurm_section({"partition": "gpu", "time": "01:00:00"}))
        self.assertIn("unknown key 'queue'", executor.check_slurm_section({"queue": "gpu"}))
        self.assertIn("wrong type", executor.check_slurm_section({"options": "--mem=4G"}))

    def test_runs_that_must_not_share_the_machine_say_why_they_run_one_at_a_time(self):
        with redirect_stdout(io.StringIO()) as out:
            serial = executor.one_at_a_time("plan", self.args(jobs=2), "they measure time")
        self.assertNotIsInstance(serial, executor.Concurrent)
        self.assertEqual(out.getvalue(), "plan: they measure time: they run one at a time whatever --jobs or --slurm "
                                         "say\n")


class ProgressLines(unittest.TestCase):
    def test_runs_in_flight_are_counted_and_the_eta_comes_from_finished_runs(self):
        progress = console.Progress(4)
        with redirect_stdout(io.StringIO()) as out:
            progress.start("a")
            progress.start("b", in_flight=1)
        self.assertRegex(out.getvalue().splitlines()[1], r"^\[2/4\] b \(2 in flight, elapsed 00:00, ETA \?\)$")

    def test_a_schedulers_runs_are_counted_as_they_end(self):
        progress = console.Progress(3)
        with redirect_stdout(io.StringIO()) as out:
            progress.finish("a", "ok")
            progress.state("1 running, 1 pending")
        self.assertEqual([line.split(" (")[0] for line in out.getvalue().splitlines()],
                         ["[1/3] a: ok", "[1/3] 1 running, 1 pending"])


class Results(unittest.TestCase):
    def test_a_result_unpacks_as_status_and_summary(self):
        status, summary = RunResult("ok", {"steps": 1}, retries=1)
        self.assertEqual((status, summary), ("ok", {"steps": 1}))

    def test_serial_keeps_what_reuse_finds_and_says_so(self):
        run = a_run("/nonexistent/r")
        with mock.patch.object(Run, "finished_earlier", lambda self: ("ok", {"steps": 3})), \
                redirect_stdout(io.StringIO()) as out:
            (result,) = executor.Serial(reuse=True).run([run])
        self.assertEqual((result.status, result.reused), ("ok", True))
        self.assertIn("reused: an earlier invocation finished this command line", out.getvalue())


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Stopping(unittest.TestCase):
    """A driver stopped by SIGTERM (kill, timeout, Slurm), or by SIGINT where it inherited it ignored (a
    shell without job control starts `driver &` so), stops as Ctrl-C stops it: its run's processes end,
    and it exits 130 with its line, its local cluster taken down on the way (a with block). A driver it
    started as a tool (launch/model-scaling's launch/plan, launch/plan's mpirun) is stopped with SIGTERM,
    not killed, and stops its own runs in turn."""

    RUN = "runs.launch_and_log(['sh', '-c', 'echo $$ > {pid}; exec sleep 60'], {log!r}, 120)"
    TOOL = "runs.run_stoppable([sys.executable, '-c', {inner!r}])"
    DRIVER = """import os, sys
sys.path.insert(0, {launch!r})
from ddp_study import console, runs
def main():
    {work}
    return 0
sys.exit(console.exit_code_of_main("driver", main))
"""

    def driver(self, work):
        return self.DRIVER.format(launch=os.path.join(ROOT, "launch"), work=work)

    def stopped_by(self, signum, nested=False):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        pid_file = os.path.join(directory, "pid")
        script = self.driver(self.RUN.format(pid=pid_file, log=os.path.join(directory, "log")))
        if nested:
            script = self.driver(self.TOOL.format(inner=script))
        driver = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        self.addCleanup(lambda: driver.poll() is None and driver.kill())  # where it failed to stop
        deadline = time.time() + 30
        while not read_text(pid_file).strip():
            self.assertLess(time.time(), deadline, "the driver's run never started")
            time.sleep(0.05)
        run_pid = int(read_text(pid_file))
        driver.send_signal(signum)
        _, stderr = driver.communicate(timeout=30)
        self.assertEqual(driver.returncode, 130, stderr)
        self.assertEqual(stderr.count("driver: interrupted"), 2 if nested else 1, stderr)
        with self.assertRaises(ProcessLookupError, msg="the run trains on after its driver stopped"):
            os.kill(run_pid, 0)

    def test_sigterm_stops_the_driver_and_its_runs(self):
        self.stopped_by(signal.SIGTERM)

    def test_sigint_stops_a_driver_started_with_it_ignored(self):
        self.stopped_by(signal.SIGINT)

    def test_a_driver_stops_the_driver_it_started_which_stops_its_runs(self):
        self.stopped_by(signal.SIGTERM, nested=True)


if __name__ == "__main__":
    unittest.main()
