"""The planner's bytes a step (launch/ddp_study/planner.py's Messages, from the shapes ddp-train --dry-run
lists) are what the binary's own --dry-run says each model sends in each mode: one rule, PowerSgd.cpp's,
written twice, held together here. Needs DDP_TRAIN (CTest sets it)."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "launch"))
from ddp_study import planner  # noqa: E402

MODELS = [[], ["model.name=mlp", "model.hidden=[300,100]"], ["model.name=lenet5"]]
MODES = {"none": [], "fp16": ["comm.compression=fp16"], "bf16": ["comm.compression=bf16"],
         "powersgd:1": ["comm.compression=powersgd", "comm.powersgd_rank=1"],
         "powersgd:4": ["comm.compression=powersgd", "comm.powersgd_rank=4"]}


def dry_run(overrides):
    result = subprocess.run([os.environ["DDP_TRAIN"], "--dry-run", "--ranks", "2", "comm.compression_start_step=0",
                             *overrides], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=os.environ.get("DDP_SOURCE_DIR"))  # where data/ is
    assert result.returncode == 0, result.stdout
    return result.stdout


class PlannerMessagesAreTheBinarys(unittest.TestCase):
    def test_every_model_in_every_mode(self):
        for model in MODELS:
            messages = planner.parse_messages(dry_run(model))
            for mode, overrides in MODES.items():
                said = int(re.search(r"^  bytes +(\d+) a step", dry_run(model + overrides), re.M).group(1))
                self.assertEqual(planner.bytes_per_step(mode, messages), said, f"{messages.name}, {mode}")


if __name__ == "__main__":
    unittest.main()
