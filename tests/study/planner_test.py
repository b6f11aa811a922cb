"""launch/ddp_study/planner.py's models on known inputs (CTest planner): the steps fit recovers S_min and B_crit,
its bootstrap interval covers them, the all-reduce costs and their fit, the bytes each exchange mode
sends (the figures ddp-train reports as comm_bytes_per_step), and the search."""
import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch"))
from ddp_study import plan_report, planner  # noqa: E402

BATCHES = [64, 128, 256, 512, 1024, 2048, 4096]


class StepsFit(unittest.TestCase):
    def test_exact_points_give_back_the_model(self):
        steps = [planner.predicted_steps(120, 500, b) for b in BATCHES]
        s_min, b_crit, rms = planner.fit_steps(BATCHES, steps)
        self.assertAlmostEqual(s_min, 120, delta=0.01)
        self.assertAlmostEqual(b_crit, 500, delta=0.1)
        self.assertLess(rms, 1e-6)

    def test_noisy_seeds_give_an_interval_around_the_truth(self):
        rng = random.Random(4)
        by_batch = {b: [planner.predicted_steps(120, 500, b) * math.exp(rng.gauss(0, 0.08)) for _ in range(3)]
                    for b in BATCHES}
        means = [sum(v) / 3 for v in by_batch.values()]
        s_min, b_crit, _ = planner.fit_steps(BATCHES, means)
        self.assertLess(abs(b_crit / 500 - 1), 0.25)
        (s_lo, s_hi), (b_lo, b_hi) = planner.bootstrap_fit(by_batch, resamples=300)
        self.assertTrue(s_lo <= 120 <= s_hi, (s_lo, s_hi))
        self.assertTrue(b_lo <= 500 <= b_hi, (b_lo, b_hi))
        self.assertLess(b_lo, b_crit)
        self.assertGreater(b_hi, b_crit)

    def test_one_batch_is_not_enough(self):
        with self.assertRaises(ValueError):
            planner.fit_steps([64, 64], [10, 11])

    def test_efficiency_and_adascale(self):
        self.assertAlmostEqual(planner.statistical_efficiency(500, 500), 0.5)
        # Noise-free gradients (B_simple 0): no gain from a larger batch; noise-dominated: gain S.
        self.assertAlmostEqual(planner.adascale_gain(0, 64, 1024), 1.0)
        self.assertAlmostEqual(planner.adascale_gain(1e12, 64, 1024), 16.0, places=3)


class AllreduceCost(unittest.TestCase):
    NET = {"alpha": 20e-6, "beta": 1 / 1.25e9}

    def test_one_rank_sends_nothing(self):
        self.assertEqual(planner.allreduce_seconds(1, 10**6, self.NET), 0.0)

    def test_ring_for_large_messages_tree_for_many_ranks_and_small_ones(self):
        a, b = self.NET["alpha"], self.NET["beta"]
        big, small = 4 * 10**6, 64
        self.assertLess(planner.ring_allreduce_seconds(8, big, a, b), planner.tree_allreduce_seconds(8, big, a, b))
        self.assertLess(planner.tree_allreduce_seconds(1024, small, a, b),
                        planner.ring_allreduce_seconds(1024, small, a, b))
        self.assertAlmostEqual(planner.allreduce_seconds(2, big, self.NET), 2 * a + big * b)

    def test_alpha_beta_fit_recovers_the_link(self):
        sizes = [2**k for k in range(3, 23)]
        times = [planner.ring_allreduce_seconds(2, m, 30e-6, 1 / 1e8) * (1 + 0.01 * (-1) ** k)
                 for k, m in enumerate(sizes)]
        alpha, beta = planner.fit_alpha_beta(sizes, times, 2)
        self.assertLess(abs(beta * 1e8 - 1), 0.02)
        self.assertLess(abs(alpha / 30e-6 - 1), 0.5)


class ExchangeModes(unittest.TestCase):
    def test_bytes_per_step_are_what_ddp_train_reports(self):
        # comm_bytes_per_step of ddp-train runs (README, "Across slow links").
        for mode, expected in (("none", 407096), ("fp16", 203556), ("bf16", 203556), ("powersgd:1", 4768),
                               ("powersgd:2", 8968), ("powersgd:4", 17368)):
            self.assertEqual(planner.bytes_per_step(mode), expected, mode)
        self.assertAlmostEqual(planner.bytes_per_step("local:4"), 407080 / 4 + 16)

    def test_powersgd_pays_two_latencies(self):
        net = {"alpha": 1e-3, "beta": 0.0}
        self.assertAlmostEqual(planner.exchange_seconds("none", 2, net), 2e-3)
        self.assertAlmostEqual(planner.exchange_seconds("powersgd:2", 2, net), 4e-3)
        self.assertAlmostEqual(planner.exchange_seconds("local:4", 2, net), 2e-3 / 4 + 2e-3)


class Search(unittest.TestCase):
    COMPUTE = {"intercept": 100e-6, "per_sample": 4e-6}

    def test_a_slow_network_asks_for_larger_batches(self):
        fast = {"alpha": 2e-6, "beta": 1 / 50e9}
        slow = {"alpha": 50e-6, "beta": 1 / 0.125e9}
        batches = [16, 32, 64, 128, 256, 512, 1024]
        on_fast = planner.best_configuration((100, 500), self.COMPUTE, fast, 8, batches, 60000)
        on_slow = planner.best_configuration((100, 500), self.COMPUTE, slow, 8, batches, 60000)
        self.assertGreater(on_slow["local_batch"], on_fast["local_batch"])
        self.assertLessEqual(on_slow["global_batch"], 60000)
        self.assertAlmostEqual(on_fast["seconds"], on_fast["steps"] * on_fast["step_seconds"])

    def test_the_training_set_bounds_the_batch(self):
        net = {"alpha": 1e-3, "beta": 1e-6}
        best = planner.best_configuration((100, 500), self.COMPUTE, net, 64, [64, 128, 256], 8000)
        self.assertEqual(best["global_batch"], 64 * 64)

    def test_scaling_limit_is_where_doubling_stops_paying(self):
        plans = [{"ranks": n, "seconds": s} for n, s in ((1, 100), (2, 52), (4, 28), (8, 26), (16, 25))]
        self.assertEqual(planner.scaling_limit(plans)["ranks"], 4)

    def test_lr_interpolates_in_log_space(self):
        lrs = {64: 0.16, 256: 0.64}
        self.assertAlmostEqual(planner.interpolated_lr(lrs, 128)[0], 0.32)
        self.assertEqual(planner.interpolated_lr(lrs, 1024), (0.64, True))
        self.assertEqual(planner.interpolated_lr(lrs, 64), (0.16, False))


class RecommendationLine(unittest.TestCase):
    def plan(self, ranks, seconds):
        return {"ranks": ranks, "global_batch": 64 * ranks, "local_batch": 64, "steps": 100, "seconds": seconds,
                "efficiency": 0.5}

    def test_where_one_rank_is_fastest_it_says_a_second_does_not_pay(self):
        plans = [self.plan(1, 0.15), self.plan(2, 0.21), self.plan(4, 0.23)]
        line = plan_report.recommendation("1 GbE", planner.scaling_limit(plans), 0.16, False, plans)
        self.assertTrue(line.startswith("- 1 rank on 1 GbE: global batch 64"), line)
        self.assertTrue(line.endswith("a second rank does not pay (2 ranks: 0.21 s)"), line)

    def test_where_ranks_pay_it_names_the_last_doubling_worth_having(self):
        plans = [self.plan(1, 1.0), self.plan(2, 0.6), self.plan(4, 0.58)]
        line = plan_report.recommendation("IB", planner.scaling_limit(plans), 0.32, True, plans)
        self.assertIn("- 2 ranks on IB: global batch 128 (64 a rank), lr 0.32 (beyond the measured batches)", line)
        self.assertTrue(line.endswith("beyond 2 ranks doubling gains under 10%: statistical efficiency 0.50"), line)


if __name__ == "__main__":
    unittest.main()
