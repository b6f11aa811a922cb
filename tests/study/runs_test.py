#!/usr/bin/python3
"""launch/ddp_study's runs, dry_runs, files, console and machine modules (CTest study_runs): how a run is
launched and read back, the dry-run check that runs before a study (one check per distinct command
line, ddp-train's own error line as the reason), results written whole, OSErrors as one line, and what
else keeps the machine busy before a bench."""
import errno
import io
import os
import shlex
import stat
import signal
import subprocess
import sys
import tempfile
import time
import shutil
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch"))
from ddp_study import ROOT, console, dry_runs, files, local_cluster, machine, plan_report, runs  # noqa: E402
from unittest import mock  # noqa: E402


class ReasonOf(unittest.TestCase):
    def test_the_last_ddp_train_error_line_not_the_launchers_report(self):
        log = ("effective config ...\nddp-train: error: rank 1: first\nddp-train: error: ranks 0-1: unknown key "
               "'optim.lr'\n----\nPrimary job terminated normally, but 1 process returned\n")
        self.assertEqual(runs.reason_of(log), "ddp-train: error: ranks 0-1: unknown key 'optim.lr'")

    def test_without_an_error_line_the_last_three_lines(self):
        self.assertEqual(runs.reason_of("a\n\nb\nc\nd\n\n"), "Last output:\nb\nc\nd")


class Launching(unittest.TestCase):
    def test_split_ranks_fills_real_ranks_then_virtual_ones(self):
        self.assertEqual(runs.split_ranks(256, 2), (2, 128))
        self.assertEqual(runs.split_ranks(1, 2), (1, 1))
        self.assertEqual(runs.split_ranks(6, 4), (3, 2))  # the largest real count that divides the world

    def test_srun_inside_an_allocation_kills_the_job_on_a_bad_exit(self):
        self.assertEqual(runs.launcher(4, "srun"), ["srun", "--mpi=pmix", "--ntasks=4", "--kill-on-bad-exit=1"])

    def test_mpirun_oversubscribes_only_beyond_the_cores(self):
        cores = os.cpu_count() or 1
        self.assertIn("--oversubscribe", runs.launcher(cores + 1))
        self.assertNotIn("--oversubscribe", runs.launcher(1))

    def test_hosts_go_through_launch_mpirun_with_the_binary_in_its_environment(self):
        cmd = runs.training_command("/b/ddp-train", "configs/mnist.yaml", ["lr.rule=linear"], 2, "/r",
                                    "hosts:node1,node2")
        self.assertEqual(cmd[:5], ["env", "DDP_TRAIN=/b/ddp-train", os.path.join(ROOT, "launch", "mpirun"), "--hosts",
                                   "node1,node2"])
        self.assertEqual(cmd[5:], ["2", "--config", os.path.join(ROOT, "configs/mnist.yaml"), "lr.rule=linear",
                                   "output.dir=/r", "output.progress=false", "--overwrite"])


class FinishedRun(unittest.TestCase):
    """--reuse keeps a run only when its log's first line is this very command line."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.run_dir, self.log = os.path.join(self.dir, "run"), os.path.join(self.dir, "run.log")
        os.mkdir(self.run_dir)
        with open(os.path.join(self.run_dir, "summary.json"), "w") as f:
            f.write('{"outcome": "nonfinite", "steps": 3}')

    def write_log(self, overrides):
        cmd = runs.training_command("/b", "c.yaml", overrides, 2, self.run_dir)
        with open(self.log, "w") as f:
            f.write(" ".join(shlex.quote(c) for c in cmd) + "\nthe output\n")

    def test_the_same_command_line_is_kept_with_its_outcome(self):
        self.write_log(["lr.rule=linear"])
        self.assertEqual(runs.finished_run("/b", "c.yaml", ["lr.rule=linear"], 2, self.run_dir, self.log),
                         ("diverged", {"outcome": "nonfinite", "steps": 3}))

    def test_another_command_line_is_run_again(self):
        self.write_log(["lr.rule=sqrt"])
        self.assertIsNone(runs.finished_run("/b", "c.yaml", ["lr.rule=linear"], 2, self.run_dir, self.log))


class DryRuns(unittest.TestCase):
    """check_runs against a stand-in for ddp-train that records each call and refuses one override."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.calls = os.path.join(self.dir, "calls")
        self.binary = os.path.join(self.dir, "ddp-train")
        with open(self.binary, "w") as f:
            f.write(f"""#!/bin/sh
echo "$*" >> {self.calls}
case " $* " in *" lr.rule=linaer "*)
  echo "effective config"; echo "ddp-train: error: override 'lr.rule=linaer': key 'lr.rule': expected one of"
  exit 2 ;;
esac
""")
        os.chmod(self.binary, os.stat(self.binary).st_mode | stat.S_IEXEC)

    def plan(self, rules):
        return [(f"{rule}/s{seed}", [f"lr.rule={rule}", f"train.seed={seed}"], 2, f"/r/{rule}-{seed}")
                for rule in rules for seed in (1, 2, 3)]

    def test_runs_that_differ_only_in_the_seed_are_checked_once(self):
        self.assertEqual(dry_runs.check_runs(self.binary, "c.yaml", self.plan(["none", "linear"])), [])
        with open(self.calls) as f:
            calls = f.read().splitlines()
        self.assertEqual(len(calls), 2)
        self.assertTrue(all(c.startswith("--dry-run --ranks 2 --config ") for c in calls), calls)

    def test_a_run_that_would_fail_is_named_with_ddp_trains_line(self):
        failures = dry_runs.check_runs(self.binary, "c.yaml", self.plan(["none", "linaer"]))
        self.assertEqual(failures, [("linaer/s1", "ddp-train: error: override 'lr.rule=linaer': key 'lr.rule': "
                                                  "expected one of")])

    def test_the_study_stops_with_exit_2_before_running_anything(self):
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err), self.assertRaises(SystemExit) as stop:
            dry_runs.refuse_if_any_would_fail("study", self.binary, "c.yaml", self.plan(["linaer"]))
        self.assertEqual(stop.exception.code, 2)
        self.assertIn("study: error: run linaer/s1 would fail: ddp-train: error:", err.getvalue())
        self.assertIn("nothing was run", err.getvalue())


class Files(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(tempfile.mkdtemp(), "report.md")

    def test_a_failed_write_leaves_the_old_file_and_no_temporary(self):
        with files.replacing(self.path) as f:
            f.write("old")
        with self.assertRaises(RuntimeError):
            with files.replacing(self.path) as f:
                f.write("half of the new")
                raise RuntimeError("the disk filled up")
        with open(self.path) as f:
            self.assertEqual(f.read(), "old")
        self.assertFalse(os.path.exists(self.path + ".tmp"))

    def test_an_oserror_names_the_file_not_its_temporary(self):
        with self.assertRaises(OSError) as raised:
            with files.replacing(self.path) as f:
                raise OSError(errno.ENOSPC, "No space left on device")
        self.assertEqual(raised.exception.filename, self.path)

    def test_json_lines_read_back_and_a_missing_file_is_empty(self):
        with open(self.path, "w") as f:
            f.write('{"step": 1}\n\n{"step": 2}\n')
        self.assertEqual(files.read_jsonl(self.path), [{"step": 1}, {"step": 2}])
        self.assertEqual(files.read_jsonl(self.path + ".missing"), [])
        self.assertIsNone(files.read_json(self.path))  # not one JSON document


class Console(unittest.TestCase):
    def test_a_full_disk_is_one_line_that_says_what_to_do_and_exit_1(self):
        def main():
            raise OSError(errno.ENOSPC, "No space left on device", "/out/runs.csv")
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(console.exit_code_of_main("study", main), 1)
        lines = err.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith("study: error: /out/runs.csv: No space left on device; the disk is full"))

    def test_other_errors_name_the_file_and_the_reason_only(self):
        line = console.failure_line("plan", OSError(errno.EACCES, "Permission denied", "/x"))
        self.assertEqual(line, "plan: error: /x: Permission denied")

    def test_progress_counts_and_shows_an_eta_once_a_run_is_done(self):
        out = io.StringIO()
        progress = console.Progress(2)
        with redirect_stdout(out):
            progress.start("first", "2 ranks")
            progress.start("second")
        first, second = out.getvalue().splitlines()
        self.assertTrue(first.startswith("[1/2] first: 2 ranks (elapsed 00:00, ETA ?)"), first)
        self.assertRegex(second, r"^\[2/2\] second \(elapsed 00:00, ETA 00:00\)$")


class OwnLocalCluster(unittest.TestCase):
    """A study that starts a cluster of its own launches its runs with launch/mpirun, which finds the
    cluster through the environment it inherits (the planner's node runs once found none)."""

    def test_runs_inside_find_the_cluster_and_the_outer_environment_comes_back(self):
        started = []
        with mock.patch.dict(os.environ, {"DDP_SLURM_STATE": "/nonexistent/outer"}), \
                mock.patch.object(local_cluster.LocalCluster, "script", lambda self, *a: started.append(a) or ""), \
                mock.patch.object(local_cluster.subprocess, "run"):
            os.environ.pop("DDP_CLUSTER_NAME", None)
            with local_cluster.LocalCluster(2) as cluster:
                self.addCleanup(shutil.rmtree, cluster.state, True)
                self.assertEqual(started, [("start", "--nodes", "2")])
                self.assertEqual(os.environ["DDP_SLURM_STATE"], cluster.state)
                self.assertEqual(os.environ["DDP_CLUSTER_NAME"], cluster.env["DDP_CLUSTER_NAME"])
            self.assertEqual(os.environ["DDP_SLURM_STATE"], "/nonexistent/outer")
            self.assertNotIn("DDP_CLUSTER_NAME", os.environ)


class BusyMachine(unittest.TestCase):
    """The planner's bench waits for a quiet machine and records what kept it busy (ddp_study.machine)."""

    def test_proc_texts_are_read_as_the_kernel_writes_them(self):
        # user nice system idle iowait irq softirq steal guest guest_nice: guest is inside user already
        self.assertEqual(machine.cpu_ticks("cpu  100 20 30 900 50 4 6 7 40 2"), (160, 7))
        self.assertEqual(machine.cpu_ticks("cpu  100 20 30 900"), (150, 0))  # an old kernel's shorter line
        stat = "4242 (a (b) c) R 1 4242 4242 0 -1 4194304 100 0 0 0 321 45 0 0 20 0 1 0 99 1000 10"
        self.assertEqual(machine.process_ticks(stat), ("a (b) c", 366))

    def test_a_process_spinning_on_a_core_is_seen_and_named(self):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.3)
            seen = machine.sample(seconds=1.0, top=5)
        finally:
            spinner.kill()
            spinner.wait()
        # On a loaded machine (ctest -j2) the spinner may get less than a core: a fifth is far above idle.
        self.assertGreaterEqual(seen["busy_cores"], 0.2)
        mine = [p for p in seen["busiest"] if p["pid"] == spinner.pid]
        self.assertTrue(mine, seen["busiest"])
        self.assertGreaterEqual(mine[0]["cores"], 0.2)
        self.assertNotIn(os.getpid(), [p["pid"] for p in seen["busiest"]])  # the sampler sleeps: not counted
        self.assertIn(f"(pid {spinner.pid})", machine.describe(seen))

    def busy(self, cores):
        return {"at": "", "busy_cores": cores, "cores": 2, "load_average": [1.0, 0.5, 0.2],
                "busiest": [{"pid": 42, "name": "ddp-train", "cores": cores}]}

    def clock(self, step):
        """time.monotonic advancing `step` seconds a call (a sample takes about a second)."""
        now = [0.0]

        def tick():
            now[0] += step
            return now[0]
        return tick

    def test_a_quiet_machine_is_measured_at_once_and_nothing_is_said(self):
        said = []
        with mock.patch.object(machine, "sample", side_effect=[self.busy(0.05)]) as sampled, \
                mock.patch.object(machine.time, "monotonic", side_effect=self.clock(0.0)):
            seen = machine.wait_until_quiet(limit_cores=0.25, patience_s=30, say=said.append)
        self.assertTrue(seen["quiet"])
        self.assertEqual((sampled.call_count, seen["waited_s"], said), (1, 0.0, []))

    def test_it_waits_for_the_machine_to_quiet_then_says_nothing_more(self):
        said = []
        with mock.patch.object(machine, "sample", side_effect=[self.busy(0.9), self.busy(0.9), self.busy(0.1)]) \
                as sampled, mock.patch.object(machine.time, "monotonic", side_effect=self.clock(0.5)):
            seen = machine.wait_until_quiet(limit_cores=0.25, patience_s=30, say=said.append)
        self.assertTrue(seen["quiet"])
        self.assertEqual((sampled.call_count, seen["busy_cores"]), (3, 0.1))
        self.assertEqual(len(said), 1)
        self.assertIn("ddp-train (pid 42) 0.90", said[0])

    def test_a_machine_that_stays_busy_is_measured_with_a_warning_and_the_report_says_so(self):
        said = []
        # Ten samples at most: a loop that ignored its patience would run out of them and fail, not hang.
        with mock.patch.object(machine, "sample", side_effect=[self.busy(0.9)] * 10) as sampled, \
                mock.patch.object(machine.time, "monotonic", side_effect=self.clock(10.0)):
            seen = machine.wait_until_quiet(limit_cores=0.25, patience_s=30, say=said.append)
        self.assertFalse(seen["quiet"])
        self.assertLess(sampled.call_count, 10)
        self.assertGreaterEqual(seen["waited_s"], 30)
        self.assertIn("WARNING", said[-1])
        self.assertIn("ddp-train (pid 42)", said[-1])
        text = plan_report.machine_text({"machine": {"before": seen, "after": self.busy(0.0)}})
        self.assertIn("the bench measured a busy machine", text)
        quiet = dict(self.busy(0.0), quiet=True, waited_s=1.0)
        self.assertNotIn("busy machine", plan_report.machine_text({"machine": {"before": quiet, "after": quiet}}))
        self.assertEqual(plan_report.machine_text({}), "")  # a bench.json from before the check

    def test_what_ran_during_the_bench_is_seen_and_its_own_processes_are_not(self):
        # Outside this process's tree: a spinner whose shell ended (it is left to init, as anything another
        # user or test started is outside it).
        shell = subprocess.run(["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                               capture_output=True, text=True, check=True)
        other = int(shell.stdout)
        try:
            time.sleep(0.3)
            watch = machine.Watch(interval=0.2)
            # Ours: a child spinning a core, the way the bench's mpirun and its ranks run.
            child = subprocess.Popen([sys.executable, "-c",
                                      "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
            child.wait()
            seen = watch.stop(top=50)
        finally:
            os.kill(other, signal.SIGKILL)
        self.assertGreaterEqual(seen["busy_cores"], 0.2, seen)  # a loaded machine (ctest -j2) may give it less
        pids = [p["pid"] for p in seen["busiest"]]  # other tests' processes may be among them too
        self.assertIn(other, pids, seen)
        self.assertNotIn(child.pid, pids, seen)

    def test_once_ours_a_process_stays_ours_when_its_parent_ends_first(self):
        me = os.getpid()
        # mpirun (10) under us starts a rank (11); mpirun ends, the rank is left to init, and spins on.
        # A pid used again is another process: 60, an outside cc1 until it ended, then one of ours.
        looks = iter([{me: (1, "python3", 0, 5), 10: (me, "mpirun", 0, 7), 11: (10, "ddp-train", 0, 8),
                       50: (1, "make", 100, 6), 60: (1, "cc1", 40, 6)},
                      {me: (1, "python3", 0, 5), 11: (1, "ddp-train", 200, 8), 50: (1, "make", 150, 6),
                       60: (me, "ddp-train", 30, 9)}])
        watch = machine.Watch(interval=3600, look=lambda: next(looks), clock=iter([0.0, 1.0]).__next__)
        seen = watch.stop()
        self.assertEqual(seen["busy_cores"], round(50 / machine.CLOCK_TICKS, 2))
        self.assertEqual([p["name"] for p in seen["busiest"]], ["make"])
        text = plan_report.machine_text({"machine": {"before": dict(self.busy(0.0), quiet=True, waited_s=0.0),
                                                     "during": dict(seen, busy_cores=0.6), "tries": 3,
                                                     "after": self.busy(0.0)}})
        self.assertIn("0.60 during the bench's part on this host (measured 3 times", text)
        self.assertIn("the hypervisor took", text)
        self.assertIn(", 0.30 stolen", machine.describe(dict(self.busy(0.5), steal_cores=0.3)))
        self.assertNotIn("stolen", machine.describe(self.busy(0.5)))
        self.assertIn("the bench measured a busy machine", text)


if __name__ == "__main__":
    unittest.main()
