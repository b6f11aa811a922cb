"""launch/model-scaling: its input refused by file and key, and its report (model_scaling_report) read
from two models' launch/plan results whose steps follow McCandlish's model exactly, so that every
figure it prints is known: the fit, where the linear rule breaks, whether a second rank pays."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "launch"))
from ddp_study import model_scaling_report, planner  # noqa: E402

STUDY = {"name": "fake", "models": [{"name": "small", "config": "configs/fashion-mnist.yaml"},
                                    {"name": "wide", "config": "configs/models/fashion-mnist-mlp.yaml"}],
         "plan": {"seeds": [1, 2], "local_batch": 64, "max_real_ranks": 2, "fit_max_batch": 1024,
                  "mode_start_step": 10, "modes": ["none", "powersgd:2"],
                  "datasets": [{"name": "fashion-mnist", "target_accuracy": 0.8, "lrs": [0.1, 0.2],
                                "global_batches": [64, 128, 256, 512, 1024], "max_epochs": 60}],
                  "cluster": {"nodes": 2, "links_mbit": [100, 1000], "modes": ["none", "powersgd:2"],
                              "recommend_links_mbit": [100]},
                  "bench": {"local_batches": [32, 64, 128]}}}
BATCHES = [64, 128, 256, 512, 1024]


def steps(s_min, b_crit, g):
    return planner.predicted_steps(s_min, b_crit, g)


def row(name, part, g, lr, seed, ranks, n_steps, step_seconds, mode="none", link=""):
    seconds = n_steps * step_seconds
    return {"dataset": "fashion-mnist", "part": part, "global_batch": g, "lr": lr, "seed": seed, "ranks": ranks,
            "local_batch": 64, "mode": mode, "link_mbit": link, "name": name, "status": "ok", "steps": n_steps,
            "steps_to_target": n_steps, "seconds_to_target": seconds, "train_seconds": seconds,
            "crossing_step": n_steps, "crossing_seconds": seconds}


def fake_model(out, name, s_min, b_crit, step, node_step):
    """One model's plan results: the sweep at lr 0.2 on McCandlish's curve (0.1 a third slower; its batch-64
    runs 1.5x slower a step, as two at a time on the host), 1 rank alone on a node taking `step` a step, the
    runs across 2 nodes at batch 128 taking node_step[mbit] a step."""
    folder = os.path.join(out, name)
    os.makedirs(folder)
    plan = dict(STUDY["plan"], name=f"fake-{name}")
    rows = []
    for g in BATCHES:
        for lr, slower in ((0.1, 1.3), (0.2, 1.0)):
            for seed in (1, 2):
                rows.append(row(f"{name}-b{g}-lr{lr}-s{seed}", "sweep", g, lr, seed, 1 if g == 64 else 2,
                                steps(s_min, b_crit, g) * slower, step * g / 64 * (1.5 if g == 64 else 1)))
    for seed in (1, 2):
        rows.append(row(f"{name}-one-rank-s{seed}", "one_rank", 64, 0.2, seed, 1, steps(s_min, b_crit, 64), step,
                        link=0))
    for mbit, seconds in node_step.items():
        for mode in ("none", "powersgd:2"):
            for seed in (1, 2):
                rows.append(row(f"{name}-nodes-{mode}-{mbit}-s{seed}", "nodes", 128, 0.2, seed, 2,
                                steps(s_min, b_crit, 128), seconds if mode == "none" else seconds / 2, mode, mbit))
    fit = {"s_min": s_min, "b_crit": b_crit, "e_min": s_min * b_crit, "b_crit_ci90": [0.9 * b_crit, 1.1 * b_crit],
           "b_crit_loo": [0.95 * b_crit, 1.05 * b_crit], "batches": BATCHES}
    predictions = {"fashion-mnist": {"fit": fit, "start_step": 10, "recommended": {}, "runs": {},
                                     "modes": {"powersgd:2": {"factor": 1.0, "lrs": {"128": 0.2, "512": 0.2}}}}}
    bench = {"compute": {"intercept": 0.0, "per_sample": step / 64}, "compute_points": [[32, step / 2], [64, step],
                                                                                      [128, 2 * step]],
             "overhead": {}, "networks": {"local cluster, tbf 100 Mbit/s": {"alpha": 50e-6, "beta": 8 / 100e6},
                                          "local cluster, tbf 1000 Mbit/s": {"alpha": 50e-6, "beta": 8 / 1000e6}}}
    with open(os.path.join(folder, "plan.yaml"), "w") as f:
        yaml.safe_dump(plan, f)
    for file, value in (("runs", rows), ("predictions", predictions), ("bench", bench)):
        with open(os.path.join(folder, f"{file}.json"), "w") as f:
            json.dump(value, f)


class Report(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp()
        # small: a 0.5 ms step, a second rank never pays (1 rank: 0.5 ms x 412.5 steps = 0.21 s); wide: a 40 ms
        # step (1 rank: 1,350 steps, 54 s), and on 1 Gbit/s the nodes' 12.5 ms a step with PowerSGD beats it.
        fake_model(self.out, "small", 100, 200, 0.5e-3, {100: 40e-3, 1000: 4e-3})
        fake_model(self.out, "wide", 100, 800, 40e-3, {100: 200e-3, 1000: 25e-3})
        small = planner.Messages("small", [(128, 784), (128,), (10, 128), (10,)])
        wide = planner.Messages("wide", [(1024, 784), (1024,), (1024, 1024), (1024,), (10, 1024), (10,)])
        path = model_scaling_report.write_report(STUDY, self.out, {"small": (60000, small), "wide": (60000, wide)},
                                                 "launch/model-scaling fake.yaml")
        with open(path) as f:
            self.report = f.read()

    def test_the_models_table_sizes_each_model(self):
        self.assertIn("| small | 101,770 |", self.report)
        self.assertIn("| wide | 1,863,690 |", self.report)

    def test_each_fit_and_where_the_linear_rule_breaks(self):
        self.assertIn("| small | 100 | 200 | 180–220 | 190–210 | 20,000 |", self.report)
        # efficiency (1 + B_crit/64) / ((1 + B_crit/B) B/64): small 0.58 at 256, 0.37 at 512; wide 0.82 at 256,
        # 0.66 at 512, 0.47 at 1024
        self.assertIn("**small**: the linear rule breaks at batch 512", self.report)
        self.assertIn("**wide**: the linear rule breaks at batch 1024", self.report)
        self.assertIn("| 256 | 0.58 | 0.25 | 0.82 | 0.25 |", self.report)  # the tuned lr: 0.2 at every batch

    def test_a_second_rank_checked_against_the_runs(self):
        lines = [line for line in self.report.splitlines() if line.startswith("| small | local cluster, tbf")]
        self.assertEqual(len(lines), 2, lines)
        for line in lines:  # 1 rank alone: 0.21 s (not the sweep's 0.31 s); the nodes' soonest (PowerSGD, 256 steps) 2-20 ms a step: 0.51-5.1 s
            self.assertIn("| 0.21 s |", line)
            self.assertRegex(line, r"\| no \| (yes|\*\*no\*\*) \|$")
        wide_1g = next(line for line in self.report.splitlines() if line.startswith("| wide | local cluster, tbf 1000"))
        self.assertRegex(wide_1g, r"\| 54\.00 s \| 9\.06 s \(128, powersgd r2\) \| yes \| yes \|$")
        self.assertIn("The planner and the runs agree on", self.report)

    def test_throughput_names_the_best_mode(self):
        line = next(line for line in self.report.splitlines() if line.startswith("| wide | 1,600/s"))
        self.assertIn("(powersgd r2)", line)


class SecondRank(unittest.TestCase):
    def test_times_within_ten_percent_are_even_not_a_verdict(self):
        self.assertEqual(model_scaling_report.pays(1.0, 0.85), "yes")
        self.assertEqual(model_scaling_report.pays(1.0, 0.95), "even")  # 0.16 s against 0.17 s: two seeds say nothing
        self.assertEqual(model_scaling_report.pays(1.0, 1.05), "even")
        self.assertEqual(model_scaling_report.pays(1.0, 1.2), "no")


class Unfinished(unittest.TestCase):
    def test_a_model_not_run_yet_is_named_and_the_others_reported(self):
        out = tempfile.mkdtemp()
        fake_model(out, "small", 100, 200, 0.5e-3, {100: 40e-3, 1000: 4e-3})
        small = planner.Messages("small", [(128, 784), (128,), (10, 128), (10,)])
        facts = {"small": (60000, small), "wide": (60000, small)}
        with open(model_scaling_report.write_report(STUDY, out, facts, "launch/model-scaling fake.yaml")) as f:
            report = f.read()
        self.assertIn("**Not run yet: wide**", report)
        self.assertIn("| small | 101,770 |", report)
        with self.assertRaises(ValueError):
            model_scaling_report.write_report(STUDY, tempfile.mkdtemp(), facts, "x")


@unittest.skipUnless(os.access(os.path.join(ROOT, "build", "ddp-train"), os.X_OK), "needs build/ddp-train (launch/build)")
class ReportOnly(unittest.TestCase):
    def test_each_models_report_is_planned_again_with_the_studys(self):
        # The committed study's measurements, in a folder of the test's: --report-only rewrites every report there.
        out = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, out)
        source = os.path.join(ROOT, "results", "model-scaling")
        for model in ("simple_nn", "mlp", "lenet5"):
            os.makedirs(os.path.join(out, model))
            for name in ("plan.yaml", "bench.json", "predictions.json", "runs.json"):
                shutil.copy(os.path.join(source, model, name), os.path.join(out, model, name))
        shutil.rmtree(os.path.join(out, "lenet5"))
        os.makedirs(os.path.join(out, "lenet5"))  # not run yet: named, not planned
        result = subprocess.run([os.path.join(ROOT, "launch", "model-scaling"), "configs/model-scaling.yaml",
                                 "--report-only", "--out", out], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        self.assertEqual(result.returncode, 0, result.stdout)
        named = os.path.relpath(out, ROOT) if out.startswith(ROOT + os.sep) else out  # as launch/model-scaling names it
        for model in ("simple_nn", "mlp"):
            with open(os.path.join(out, model, "report.md")) as f:
                head = f.read(600)
            self.assertIn(f"Planned again by `launch/plan {named}/{model}/plan.yaml --plan-only --out {named}/{model}`",
                          head)
        self.assertFalse(os.path.exists(os.path.join(out, "lenet5", "report.md")))
        with open(os.path.join(out, "report.md")) as f:
            self.assertIn("Not run yet: lenet5", f.read())


class Input(unittest.TestCase):
    def refused(self, study, *words):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(study, f)
        result = subprocess.run([os.path.join(ROOT, "launch", "model-scaling"), f.name, "--out", tempfile.mkdtemp()],
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.unlink(f.name)
        self.assertEqual(result.returncode, 2, result.stdout)
        for word in (f.name,) + words:
            self.assertIn(word, result.stdout)

    def test_bad_studies_are_refused_naming_the_key(self):
        self.refused(dict(STUDY, seeds=[1]), "unknown key 'seeds'")
        self.refused({k: v for k, v in STUDY.items() if k != "models"}, "missing key 'models'")
        self.refused(dict(STUDY, models=[{"name": "x", "config": "configs/none.yaml"}]), "configs/none.yaml",
                     "does not exist")
        self.refused(dict(STUDY, models=[{"name": "x"}]), "needs name and config")
        with_config = json.loads(json.dumps(STUDY))
        with_config["plan"]["datasets"][0]["config"] = "configs/mnist.yaml"
        self.refused(with_config, "plan.datasets[0].config")


if __name__ == "__main__":
    unittest.main()
