"""What launch/plan runs, as config keys: one run to the target (its layout of processes and virtual
ranks, batch, lr, warmup, evaluations and mode), and the command line that runs a plan's configuration."""
import shlex

from . import planner
from .runs import split_ranks


# A plan's keys that may be left out, and their values (launch/plan fills them in; so does a reader of its
# plan.yaml, as launch/model-scaling's report).
PLAN_DEFAULTS = {"local_batch": 64, "max_real_ranks": 2, "fit_max_batch": 1024, "warmup_steps": 0,
                 "evals_per_epoch": 20, "lr_refine": [], "modes": ["none"], "mode_batches": [], "mode_lr_factors": [1.0],
                 "mode_start_step": 10, "timeout_s": 1800, "notes": ""}


def eval_every(plan, size, global_batch):
    """Steps between evaluations: evals_per_epoch an epoch, at least every step."""
    return max(1, size // global_batch // plan["evals_per_epoch"])


def layout(plan, global_batch, mode="none", local_batch=None):
    """(processes, virtual ranks each, local batch) of a run. Given a local batch (runs across nodes):
    real ranks only. On this host: up to max_real_ranks processes at the plan's local batch, virtual
    ranks for the rest; local SGD, whose ranks each step a replica of their own, as max_real_ranks real
    processes sharing the global batch (virtual ranks share one model); so is any other mode at a global
    batch under max_real_ranks local batches: one process would exchange with nobody (so do the runs across
    the cluster's nodes that use its factor at 64: launch/plan refuses cluster.nodes other than
    max_real_ranks)."""
    if local_batch:
        return global_batch // local_batch, 1, local_batch
    if planner.is_local_sgd(mode) or (mode != "none" and global_batch < plan["max_real_ranks"] * plan["local_batch"]):
        return plan["max_real_ranks"], 1, global_batch // plan["max_real_ranks"]
    local = min(plan["local_batch"], global_batch)
    processes, virtual = split_ranks(global_batch // local, plan["max_real_ranks"])
    return processes, virtual, local


def run_overrides(plan, d, size, global_batch, lr, seed, mode="none", local_batch=None):
    """(processes, overrides) of one run to the target at peak lr `lr` (lr.rule=linear from optim.base_lr =
    lr x 64 / B). The warmup is warmup_steps at every batch: one in epochs is a share of the steps that
    falls as 1/B, as B_crit/B does, and bent the fit (none at batch 64, 234 of ~330 steps at 128). Evaluated
    every eval_every steps; in `mode` from mode_start_step."""
    processes, virtual, local = layout(plan, global_batch, mode, local_batch)
    every = eval_every(plan, size, global_batch)
    return processes, [f"train.epochs={d['max_epochs']}", f"train.local_batch={local}", f"train.virtual_ranks={virtual}",
                       f"train.seed={seed}", "lr.rule=linear", "lr.base_batch=64",
                       f"optim.base_lr={lr * 64 / global_batch:.6g}", "lr.warmup_epochs=0",
                       f"lr.warmup_steps={plan['warmup_steps']}", f"metrics.target_accuracy={d['target_accuracy']}",
                       "train.stop_at_target=true", f"metrics.eval_every_steps={every}", f"metrics.every_steps={every}",
                       "checkpoint.every_epochs=0", "checkpoint.every_steps=0",
                       *planner.mode_overrides(mode, plan["mode_start_step"])]


# What a run of the sweep sets only to be measured, and a user's own run leaves at its default.
SWEEP_ONLY = ("train.seed=", "train.virtual_ranks=", "metrics.every_steps=", "checkpoint.")


def config_keys(plan, d, size, configuration):
    """The overrides that run a plan's configuration (ranks, local batch, mode, lr) as the sweep ran it."""
    _, overrides = run_overrides(plan, d, size, configuration["global_batch"], configuration["lr"], 0,
                                 configuration["mode"], configuration["local_batch"])
    return [o for o in overrides if not o.startswith(SWEEP_ONLY)]


def command_line(plan, d, size, configuration, hosts=None):
    """The command that runs a plan's configuration: ddp-train alone for one rank, else launch/mpirun
    over `hosts` (node1,node2 on the local cluster) or a hostfile of yours (a line per host: "host
    slots=K")."""
    arguments = " ".join(shlex.quote(a) for a in ["--config", d["config"], *config_keys(plan, d, size, configuration)])
    if configuration["ranks"] == 1:
        return f"build/ddp-train {arguments}"
    where = f"--hosts {hosts}" if hosts else "--hostfile hosts"
    return f"launch/mpirun {where} {configuration['ranks']} {arguments}"
