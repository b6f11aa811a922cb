#!/usr/bin/python3
"""launch/ddp_study/slow_links_report.py's tables and verdicts on known runs (CTest
slow_links_report): links named, ratios against the plain all-reduce, targets met or missed,
accuracy losses flagged, the fastest mode per link, and a mode whose parameters differ between
links called a defect."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch"))
from ddp_study import slow_links_report as slr  # noqa: E402

STUDY = {"name": "t", "config": "configs/mnist.yaml", "nodes": 2, "seeds": [1, 2], "links_mbit": [100, 0],
         "overrides": ["train.epochs=1", "metrics.target_accuracy=0.8"], "lrs": [{"name": "lr 0.05", "overrides": []}],
         "modes": [{"name": "none", "overrides": []}, {"name": "powersgd", "overrides": []}],
         "targets": [{"mode": "powersgd", "link_mbit": 100, "speedup": 2}], "accuracy_points": 1.0}


def run(mode, mbit, seed, sps, seconds, acc, crc="c1", status="ok"):
    return {"part": "links", "mode": mode, "lr": "lr 0.05", "link_mbit": mbit, "seed": seed, "status": status,
            "samples_per_second": sps, "seconds_to_target": seconds, "final_test_accuracy": acc,
            "comm_bytes_per_step": 407096 if mode == "none" else 8968, "parameters_crc32": f"{mode}-{seed}-{crc}"}


def runs(powersgd_acc=0.855, powersgd_100_sps=2500, crc_at_veth="c1"):
    rows = []
    for seed in (1, 2):
        rows += [run("none", 100, seed, 1000, 20.0, 0.86), run("none", 0, seed, 9000, 3.0, 0.86),
                 run("powersgd", 100, seed, powersgd_100_sps, 8.0, powersgd_acc),
                 run("powersgd", 0, seed, 8000, 4.0 if seed == 1 else "", powersgd_acc, crc=crc_at_veth)]
    return slr.Runs(rows)


class Names(unittest.TestCase):
    def test_links_are_named_by_their_rate(self):
        self.assertEqual([slr.link_name(m) for m in (0, "", None, 100, 1000, 2500)],
                         ["uncapped", "uncapped", "uncapped", "100 Mbit/s", "1 Gbit/s", "2.5 Gbit/s"])

    def test_a_ratio_cell_is_against_the_base_and_says_which_way_is_better(self):
        self.assertEqual(slr.ratio_cell(3000, 1000, "{:,.0f}"), "3,000 (3.00×)")
        self.assertEqual(slr.ratio_cell(5.0, 20.0, "{:.1f}", higher_is_better=False), "5.0 (4.00×)")
        self.assertEqual(slr.ratio_cell(None, 1000, "{:.0f}"), "–")
        self.assertEqual(slr.ratio_cell(7.0, None, "{:.1f}"), "7.0")


class Tables(unittest.TestCase):
    def test_throughput_is_the_median_against_none_at_the_same_link(self):
        lines = slr.throughput_table(runs(), STUDY, "lr 0.05")
        self.assertIn("| powersgd | 8,968 | 2,500 (2.50×) | 8,000 (0.89×) |", lines)

    def test_time_to_target_counts_only_links_where_every_run_reached_it(self):
        lines = slr.target_table(runs(), STUDY, "lr 0.05")
        self.assertIn("| none | 20.0 (1.00×) | 3.0 (1.00×) |", lines)
        self.assertIn("| powersgd | 8.0 (2.50×) | 1/2 reached |", lines)

    def test_an_accuracy_loss_beyond_the_points_allowed_is_flagged(self):
        lines = slr.accuracy_table(runs(powersgd_acc=0.80), STUDY)
        self.assertIn("| powersgd | 0.8000 ± 0.0000 (-6.00) **(misses)** |", lines)
        self.assertIn("| powersgd | 0.8550 ± 0.0000 (-0.50) |", slr.accuracy_table(runs(), STUDY))

    def test_parameters_that_differ_between_links_are_a_defect(self):
        self.assertTrue(slr.identical_across_links(runs(), STUDY))
        self.assertFalse(slr.identical_across_links(runs(crc_at_veth="c2"), STUDY))
        self.assertIn("DIFFERENT parameters", slr.accuracy_table(runs(crc_at_veth="c2"), STUDY)[-1])


class Verdicts(unittest.TestCase):
    def test_a_speedup_target_is_met_or_missed(self):
        met = slr.target_lines(runs(powersgd_100_sps=2500), STUDY)
        self.assertIn("- powersgd ≥ 2× the samples/s of none at 100 Mbit/s (lr 0.05): 2,500 / 1,000 = 2.50×, met", met)
        missed = slr.target_lines(runs(powersgd_100_sps=1500), STUDY)
        self.assertIn("- powersgd ≥ 2× the samples/s of none at 100 Mbit/s (lr 0.05): 1,500 / 1,000 = 1.50×, "
                      "**missed**", missed)

    def test_the_accuracy_verdict_names_the_mode_that_misses(self):
        self.assertIn("- accuracy within 1 point of none: every mode, at every lr", slr.target_lines(runs(), STUDY))
        lines = slr.target_lines(runs(powersgd_acc=0.80), STUDY)
        self.assertIn("- accuracy within 1 point of none (lr 0.05): powersgd **misses** by 5.00 points (-6.00)", lines)

    def test_the_fastest_mode_per_link_among_those_that_always_reached_the_target(self):
        lines = slr.winners(runs(), STUDY)
        # At 100 Mbit/s PowerSGD wins; uncapped, PowerSGD reached it once in two: none wins.
        self.assertIn("| lr 0.05 | powersgd (8.0 s) | none (3.0 s) |", lines)

    def test_the_study_overrides_give_the_target_and_the_epochs(self):
        self.assertEqual(slr.target_accuracy(STUDY), 0.8)
        self.assertEqual(slr.epochs_of(STUDY), "1")


if __name__ == "__main__":
    unittest.main()
