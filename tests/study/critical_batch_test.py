#!/usr/bin/python3
"""launch/ddp_study/critical_batch.py: the noise-scale prediction and the observed break that launch/study
reports (the study drives these very functions)."""
import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch"))
from ddp_study import critical_batch as cb  # noqa: E402


def step(trace, grad_sq):
    """A steps.jsonl line with the step's own raw estimates (and smoothed ones that must not count)."""
    return {"noise_trace_sigma_raw": trace, "noise_grad_sq_raw": grad_sq, "noise_trace_sigma": 1e9,
            "noise_grad_sq": 1e-9}


class RunNoiseScale(unittest.TestCase):
    def test_averages_numerator_and_denominator_separately(self):
        # Mean of the ratios would be (10/1 + 10/4) / 2 = 6.25; the ratio of the means is 10 / 2.5 = 4.
        self.assertAlmostEqual(cb.run_noise_scale([step(10, 1), step(10, 4)]), 4.0)

    def test_recovers_a_known_noise_scale_from_noisy_unbiased_estimates(self):
        # Unbiased per-step estimates scatter around tr(Sigma) = 300 and |G|^2 = 0.5 (B = 600), and
        # single |G|^2 estimates may be negative, as the real ones are; the run's ratio is still 600.
        rng = random.Random(7)
        steps = [step(300 + rng.gauss(0, 60), 0.5 + rng.gauss(0, 0.6)) for _ in range(20000)]
        self.assertLess(sum(s["noise_grad_sq_raw"] < 0 for s in steps), len(steps))
        self.assertGreater(sum(s["noise_grad_sq_raw"] < 0 for s in steps), 1000)
        self.assertAlmostEqual(cb.run_noise_scale(steps) / 600, 1.0, delta=0.03)

    def test_averages_the_raw_per_step_estimates_not_the_smoothed_ones(self):
        # A run whose moving averages (noise_*) lag its per-step estimates (noise_*_raw): the mean is
        # taken of the raw ones, each step weighing the same.
        lines = [{"noise_trace_sigma_raw": 10.0 * (k + 1), "noise_grad_sq_raw": 1.0,
                  "noise_trace_sigma": 10.0, "noise_grad_sq": 1.0} for k in range(9)]
        self.assertAlmostEqual(cb.run_noise_scale(lines), 50.0)  # mean of 10, 20, ..., 90
        self.assertIsNone(cb.run_noise_scale([{"noise_trace_sigma": 10.0, "noise_grad_sq": 1.0}]),
                          "smoothed values alone are no per-step estimates")

    def test_skips_unmeasured_steps_and_refuses_meaningless_runs(self):
        self.assertAlmostEqual(cb.run_noise_scale([step(None, None), step(8, 2), {"noise_grad_sq_raw": 1}]), 4.0)
        self.assertIsNone(cb.run_noise_scale([]))
        self.assertIsNone(cb.run_noise_scale([step(None, None)]))
        self.assertIsNone(cb.run_noise_scale([step(10, -1), step(10, 0.5)]))  # mean |G|^2 not positive

    def test_prediction_is_the_mean_over_seeds_that_measured(self):
        self.assertAlmostEqual(cb.predict([400, None, 600]), 500)
        self.assertIsNone(cb.predict([None, None]))


class ObservedBreak(unittest.TestCase):
    def test_diverged_runs_count_as_chance(self):
        runs = [{"status": "ok", "final_test_accuracy": "0.8"}, {"status": "diverged", "final_test_accuracy": ""},
                {"status": "exit 1", "final_test_accuracy": ""}]
        self.assertAlmostEqual(cb.mean_accuracy(runs), (0.8 + cb.CHANCE) / 2)
        self.assertTrue(math.isnan(cb.mean_accuracy([{"status": "timeout"}])))
        # A completed run without an accuracy (an old summary) is left out, not a crash.
        self.assertAlmostEqual(cb.mean_accuracy([{"status": "ok", "final_test_accuracy": ""},
                                                 {"status": "ok", "final_test_accuracy": "0.5"}]), 0.5)

    def test_first_batch_more_than_two_points_below_the_smallest(self):
        accuracy = {64: 0.820, 128: 0.805, 256: 0.800, 512: 0.799, 1024: 0.70}
        self.assertEqual(cb.first_loss(accuracy), 512)  # 0.800 is exactly 2 points: not a loss
        self.assertEqual(cb.first_loss({64: 0.82, 128: float("nan"), 256: 0.5}), 256)
        self.assertIsNone(cb.first_loss({64: 0.82, 128: 0.81}))
        self.assertIsNone(cb.first_loss({}))

    def test_a_failed_batch_in_the_middle_is_skipped_everywhere(self):
        accuracy = {64: 0.82, 128: 0.815, 256: float("nan"), 512: 0.70}
        self.assertEqual(cb.first_loss(accuracy), 512)
        self.assertEqual(cb.last_held(accuracy), 128)  # not the failed 256
        crossing = cb.interpolated_crossing(accuracy)
        self.assertTrue(128 < crossing < 512, crossing)

    def test_nothing_is_lost_from_a_smallest_batch_that_failed_or_learnt_nothing(self):
        for smallest in (float("nan"), cb.CHANCE, 0.05):
            accuracy = {64: smallest, 128: 0.80, 256: 0.10}
            self.assertIsNone(cb.first_loss(accuracy))
            self.assertIsNone(cb.last_held(accuracy))
            self.assertIsNone(cb.interpolated_crossing(accuracy))
        self.assertEqual(cb.last_held({64: 0.82, 128: 0.81}), 128)  # none lost: the largest held

    def test_interpolated_crossing_lies_between_the_batches_in_log2(self):
        # Loss 0.5 points at 512, 3.5 at 1024: 2 points is half-way in log2, at 512 * sqrt(2).
        accuracy = {64: 0.820, 256: 0.818, 512: 0.815, 1024: 0.785}
        self.assertAlmostEqual(cb.interpolated_crossing(accuracy), 512 * 2 ** 0.5)
        self.assertIsNone(cb.interpolated_crossing({64: 0.82, 128: 0.81}))
        # A batch that lost everything: the crossing sits just above the last batch that held.
        self.assertLess(cb.interpolated_crossing({64: 0.82, 128: 0.82, 256: 0.10}), 128 * 1.03)

    def test_verdict_names_the_ratio_and_its_resolution(self):
        self.assertIn("1024 / 483 = 2.12: NOT within 2x", cb.verdict(483, 1024, 512))
        line = cb.verdict(483, 512, 256)
        self.assertIn("= 1.06: within 2x", line)
        self.assertIn("between batch 256 and 512", line)
        self.assertIn("cannot be checked", cb.verdict(483, None, None))
        self.assertIn(": within 2x", cb.verdict(100, 200, 100))  # the bounds count as within
        self.assertIn(": within 2x", cb.verdict(400, 200, 100))
        self.assertIn("NOT within", cb.verdict(401, 200, 100))
        self.assertIn("known to a factor 1.2", cb.verdict(100, 150, 128))  # not rounded to 1
        self.assertIn("no prediction", cb.verdict(None, 512, 256))


if __name__ == "__main__":
    unittest.main()
