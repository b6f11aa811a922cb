#!/usr/bin/python3
"""launch/ddp_study/study_report.py's tables on a small known sweep (CTest study_report): accuracy
mean ± std by batch and rule with diverged and failed runs marked, steps, where each rule holds,
throughput and parallel efficiency. The plots are study_smoke's."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch"))
from ddp_study import study_report  # noqa: E402

STUDY = {"name": "t", "rules": [{"name": "none"}, {"name": "linear"}], "config": "configs/mnist.yaml",
         "overrides": [], "local_batch": 64, "seeds": [1, 2], "max_real_ranks": 2, "notes": ""}


def row(rule, g, seed, status="ok", acc=None, steps=None, ranks=1, virtual=1, sps=None, b_simple=""):
    return {"rule": rule, "global_batch": g, "seed": seed, "status": status, "ranks": ranks, "virtual_ranks": virtual,
            "final_test_accuracy": "" if acc is None else acc, "steps": "" if steps is None else steps,
            "samples_per_second": "" if sps is None else sps, "b_simple": b_simple}


def sweep():
    rows = [
        # none: 0.80 at 64 (two seeds), 0.70 at 256: loses 10 points.
        row("none", 64, 1, acc=0.79, steps=100, sps=1000), row("none", 64, 2, acc=0.81, steps=100, sps=1000),
        row("none", 256, 1, acc=0.70, steps=25, ranks=2, virtual=2, sps=3000),
        row("none", 256, 2, acc=0.70, steps=25, ranks=2, virtual=2, sps=3000),
        # linear: holds at 128 (within 2 points), one seed diverged at 256, the other failed.
        row("linear", 64, 1, acc=0.80, steps=100, sps=1000), row("linear", 64, 2, acc=0.80, steps=100, sps=1000),
        row("linear", 128, 1, acc=0.79, steps=50, ranks=2, sps=1800),
        row("linear", 128, 2, acc=0.79, steps=50, ranks=2, sps=1800),
        row("linear", 256, 1, status="diverged", ranks=2, virtual=2), row("linear", 256, 2, status="exit 1", ranks=2,
                                                                          virtual=2),
    ]
    return study_report.Sweep(STUDY, rows, [])


class Tables(unittest.TestCase):
    def test_accuracy_is_mean_and_std_over_seeds_with_diverged_and_failed_runs_marked(self):
        lines = study_report.accuracy_table(sweep())
        self.assertIn("| global batch | ranks x virtual | none | linear |", lines)
        self.assertIn("| 64 | 1 x 1 | 0.800 ± 0.014 | 0.800 ± 0.000 |", lines)
        self.assertIn("| 128 | 2 x 1 | failed | 0.790 ± 0.000 |", lines)  # none has no run at 128
        self.assertIn("| 256 | 2 x 2 | 0.700 ± 0.000 | diverged (1) |", lines)

    def test_steps_are_the_mean_over_completed_runs(self):
        lines = study_report.steps_table(sweep())
        self.assertIn("| 64 | 100 | 100 |", lines)
        self.assertIn("| 256 | 25 | – |", lines)

    def test_a_rule_holds_until_it_first_loses_two_points_a_diverged_run_counting_as_chance(self):
        rows = {line.split(" | ")[0]: line for line in study_report.holds_section(sweep()) if line.startswith("| ")}
        # none loses 10 points at 256 (it has no 128: held at 64); linear holds at 128, then 256 averages
        # one diverged run (chance) and one failed run (left out): 0.1.
        self.assertEqual(rows["| none"], "| none | 0.800 | 64 | 0.800 | 100 | 0.700 | 25 |")
        self.assertEqual(rows["| linear"], "| linear | 0.800 | 128 | 0.790 | 50 | 0.100 | – |")

    def test_throughput_counts_real_ranks_only(self):
        ranks, sps, efficiency = study_report.throughput(sweep())
        self.assertEqual(ranks, [1, 2])  # the runs with virtual ranks are left out
        self.assertEqual(sps, [1000, 1800])
        self.assertEqual([round(e, 3) for e in efficiency], [1.0, 0.9])
        self.assertIn("| 2 | 1,800 | 0.90 |", study_report.throughput_table(ranks, sps, efficiency))

    def test_the_noise_table_leaves_unmeasured_batches_blank(self):
        s = sweep()
        s.ok[0]["b_simple"] = 400
        s.ok[1]["b_simple"] = 600
        lines = study_report.noise_table(s)
        self.assertIn("| 64 | 500 | – |", lines)


class Prediction(unittest.TestCase):
    PREDICTION = {"predicted_critical_batch": 100.0, "written_at": "2026-12-01 10:00:00 UTC", "runs": [
        {"b_simple_run": 90.0, "status": "ok"}, {"b_simple_run": 110.0, "status": "ok"}], "base_batch": 64,
        "global_batch": 64, "rule": "linear", "lr": 0.01, "ranks": 2, "virtual_ranks": 2, "micro_batch": 16}

    def test_the_prediction_says_when_it_was_written_and_what_it_rests_on(self):
        text = "\n".join(study_report.prediction_lines(self.PREDICTION))
        self.assertIn("**Predicted critical batch ≈ 100** (written to `prediction.json` at 2026-12-01 10:00:00 UTC, "
                      "before any larger batch ran).", text)
        self.assertIn("averaged over seeds: 90, 110.", text)
        later = "\n".join(study_report.prediction_lines(self.PREDICTION, predated=3))
        self.assertIn("after 3 sweep runs reused from an earlier invocation had finished", later)

    def test_a_miss_beyond_two_times_says_why(self):
        by_batch = {64: 0.80, 128: 0.80, 256: 0.79, 512: 0.70}
        text = "\n".join(study_report.observation_lines(100.0, "linear", by_batch))
        self.assertIn("**Observed: `linear` first loses more than 2 points at global batch 512**", text)
        self.assertIn("Why it misses:", text)
        within = "\n".join(study_report.observation_lines(300.0, "linear", by_batch))
        self.assertNotIn("Why it misses:", within)


if __name__ == "__main__":
    unittest.main()
