"""The Python the experiment drivers in launch/ share (study, claims, slow-links, plan), one job a
module:

  runs               launching one ddp-train run (mpirun, srun, launch/mpirun over hosts) and reading
                     its outcome (ok, diverged, failed); what --reuse keeps
  executor           where a phase of runs executes and how many at once: one at a time, --jobs K on
                     cores of their own (or job steps inside an allocation), --slurm; a RunResult each
  slurm_array        --slurm: runs as tasks of Slurm job arrays, their states read, lost tasks retried
  dry_runs           every run's command line checked with ddp-train --dry-run before the first runs
  files              results written whole or not at all; JSON and JSON-lines read back
  console            progress lines with an ETA; an OSError as one line and exit 1
  stats              mean and standard deviation over seeds
  local_cluster      the local cluster of network namespaces a study runs on (cluster/start)
  critical_batch     the critical batch: predicted from the noise scale, observed where a rule breaks
  study_report       launch/study's report.md and plots
  slow_links_report  launch/slow-links' report.md and plots
  planner            the planner's statistical and throughput models, its modes and its search
  sweep_statistics   launch/plan's sweep read: crossings, censored medians, the fit's sensitivity, modes' factors
  plan_runs          what launch/plan runs, as config keys, and a recommendation's command line
  plan_report        launch/plan's report.md and plots
  model_scaling_report  launch/model-scaling's report.md: the models' plans side by side

The drivers put launch/ on sys.path and import `from ddp_study import ...`; so do the tests.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
