// ddp-train: parse the command line, set up (train/Setup.h), train (train/Trainer.h),
// report. Every failure ends as one line on stderr and an exit code: 2 for bad input,
// 75 for a stop with a checkpoint to resume from, 1 for anything else. A run tells its story
// (the config, progress, the ending) on stderr alone; stdout carries only what was asked for
// (--dry-run's description, --print-config, the help).
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <vector>

#include "comm/MpiRuntime.h"
#include "common/Errors.h"
#include "common/Version.h"
#include "config/Config.h"
#include "train/Setup.h"
#include "train/StopSignal.h"
#include "train/Trainer.h"

namespace {

// Before MPI is up, the launcher's variables tell which rank we are, so that only one
// rank prints argument errors.
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

// --print-config: the config as a run would take it, read and checked without the data, MPI or
// a run directory (what the docs test loads every configs/*.yaml with).
int print_effective_config(const ddp::CommandLine& command_line) {
  try {
    const ddp::Config config = ddp::load_config(ddp::config_path_of(command_line), command_line.overrides);
    if (launcher_rank() == 0) fmt::print("{}", ddp::dump_config(config));
    return ddp::kExitOk;
  } catch (const std::exception& e) {
    if (launcher_rank() == 0) fmt::print(stderr, "ddp-train: error: {}\n", ddp::message_of(e));
    return ddp::exit_code_of(e);
  }
}

// The command line, or the exit code when there is nothing to run (--help, a bad argument,
// --print-config).
std::optional<int> parse_command_line(int argc, char** argv, ddp::CommandLine& command_line) {
  CLI::App app{"ddp-train: data-parallel training (simple_nn, mlp, lenet5) with learning-rate scaling rules", "ddp-train"};
  app.add_option("--config", command_line.config_path, "YAML config file")->check(CLI::ExistingFile);
  app.add_option("overrides", command_line.overrides, "section.key=value overrides applied after the file");
  app.add_flag("--overwrite", command_line.overwrite, "reuse an output.dir that holds a previous run's results");
  app.add_flag("--resume", command_line.resume,
               "continue the run in output.dir from its newest valid checkpoint (checkpoint.resume=auto); without "
               "--config, with the run's own output.dir/config.yaml");
  app.add_flag("--dry-run", command_line.dry_run,
               "check the config, the data, the resume source and the run's shape, print them, train nothing "
               "(exit 0 or 2)");
  app.add_option("--ranks", command_line.dry_run_ranks,
                 "with --dry-run: check the run as this many ranks would have it (default: the ranks launched)")
      ->check(CLI::Range(1, 1 << 20));
  bool print_config = false, keys_markdown = false;
  app.add_flag("--print-config", print_config,
               "print the effective config (--config, then the overrides) and exit: 0, or 2 with the error; "
               "reads no data");
  app.add_flag("--help-config-markdown", keys_markdown,
               "print every config key as a Markdown table (the reference in docs/configuration.md) and exit");
  app.set_version_flag("--version", std::string("ddp-train ") + ddp::kVersion);
  app.footer("Config keys:\n" + ddp::describe_config_keys() +
             "\nLaunch: mpirun -np N build/ddp-train --config configs/mnist.yaml lr.rule=linear\n"
             "Continue a stopped run: mpirun -np N build/ddp-train --resume output.dir=DIR\n"
             "Check before spending time: build/ddp-train --dry-run --ranks N --config FILE [overrides]\n"
             "The reference of every key: docs/configuration.md\n"
             "Exit codes: 0 success, 2 bad input (config, data, arguments), 75 stopped early with a checkpoint\n"
             "(a SIGTERM/SIGUSR1 or train.stop_after_steps; continue with --resume), 1 any other failure (a stop\n"
             "with checkpoints off among them: nothing to continue from).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = launcher_rank() == 0 ? app.exit(e) : e.get_exit_code();
    return code == 0 ? ddp::kExitOk : ddp::kExitBadInput;
  }
  if (command_line.dry_run_ranks > 0 && !command_line.dry_run) {
    if (launcher_rank() == 0) fmt::print(stderr, "ddp-train: error: --ranks only goes with --dry-run\n");
    return ddp::kExitBadInput;
  }
  if (keys_markdown) {
    if (launcher_rank() == 0) fmt::print("{}", ddp::describe_config_keys_markdown());
    return ddp::kExitOk;
  }
  if (command_line.resume) command_line.overrides.push_back("checkpoint.resume=auto");
  if (print_config) return print_effective_config(command_line);
  return std::nullopt;
}

// Why the run stopped, in rank 0's words: the step budget, or the signal and the ranks that
// received it (the stop flag travels to every rank, the signal's number only to its own).
// Collective over `control` when a stop was requested.
std::string stop_reason(const ddp::TrainingResult& result, const ddp::Config& config, ddp::Communicator& control) {
  if (result.stop_cause == ddp::StopCause::StepBudget)
    return fmt::format("train.stop_after_steps={}", config.train.stop_after_steps);
  const std::vector<std::string> signals = control.allgather(std::to_string(ddp::stop_signal_number()));
  std::map<std::string, std::vector<int>> ranks_of;  // signal number -> the ranks it reached
  for (int r = 0; r < int(signals.size()); ++r)
    if (signals[r] != "0") ranks_of[signals[r]].push_back(r);
  std::vector<std::string> parts;
  for (const auto& [signal, ranks] : ranks_of)
    parts.push_back(fmt::format("signal {} on rank{} {}", signal, ranks.size() > 1 ? "s" : "", fmt::join(ranks, ",")));
  return parts.empty() ? std::string("a stop request") : fmt::format("{}", fmt::join(parts, ", "));
}

// Rank 0 says how the run ended; every rank returns the exit code.
int report(const ddp::TrainingResult& result, const ddp::Config& config, ddp::Communicator& control,
           const std::string& run_dir) {
  const int rank = control.rank();
  // Every rank knows from the config whether rank 0 keeps checkpoints (result.checkpoint is rank 0's only).
  const bool checkpoints = config.checkpoint.every_steps > 0 || config.checkpoint.every_epochs > 0;
  switch (result.outcome) {
    case ddp::Outcome::Completed:
      // On stderr with every other line of the run's story, so that a log of both streams
      // (`> log 2>&1`, Slurm's output file) reads in order: launchers forward the two separately.
      if (rank == 0)
        fmt::print(stderr, "final test accuracy {:.4f}, test loss {:.4f}, {:.0f} samples/s, {:.1f} s; results in {}\n",
                   result.final_test_accuracy, result.final_test_loss, result.samples_per_second,
                   result.wall_seconds, run_dir);
      return ddp::kExitOk;
    case ddp::Outcome::Stopped: {
      const std::string why = stop_reason(result, config, control);
      // Exit 75 promises a checkpoint to continue from (the Slurm script requeues on it); without
      // one the work is lost, and a requeued --resume would start over: exit 1.
      if (rank == 0 && checkpoints)
        fmt::print(stderr, "ddp-train: stopped at step {} ({}); checkpoint {}; continue with --resume\n", result.step,
                   why, result.checkpoint);
      if (rank == 0 && !checkpoints)
        fmt::print(stderr,
                   "ddp-train: error: stopped at step {} ({}) with checkpoints off (checkpoint.every_steps=0 and "
                   "checkpoint.every_epochs=0): nothing was saved, so the run cannot be continued; --resume would "
                   "start again from step 0\n",
                   result.step, why);
      return checkpoints ? ddp::kExitStopped : ddp::kExitFailure;
    }
    case ddp::Outcome::NonFinite:
      if (rank == 0)
        fmt::print(stderr,
                   "ddp-train: error: non-finite loss or gradient {} on some rank; the last good state (step {}) "
                   "is in {}; lower optim.base_lr or set train.on_nonfinite=skip\n",
                   result.check_every > 1
                       ? fmt::format("in steps {}..{} (flags are read every {} steps: train.check_every)",
                                     result.step, result.nonfinite_step, result.check_every)
                       : fmt::format("at step {}", result.nonfinite_step),
                   result.step, checkpoints ? result.checkpoint : std::string("no checkpoint (checkpoints are off)"));
      return ddp::kExitFailure;
  }
  return ddp::kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  ddp::CommandLine command_line;
  if (const auto code = parse_command_line(argc, argv, command_line)) return *code;

  ddp::MpiRuntime mpi(&argc, &argv);
  ddp::install_stop_signal_handlers();
  // Set-up talks over MPI whatever the training backend: ranks must agree on every
  // failure before any of them enters a collective the others would never join.
  const std::unique_ptr<ddp::Communicator> control = ddp::make_mpi_world_communicator();
  if (command_line.dry_run) return ddp::dry_run(command_line, *control);
  std::optional<ddp::PreparedRun> run;
  try {
    run.emplace(ddp::prepare_run(command_line, *control));
  } catch (const ddp::SetupFailed& failed) {
    return failed.exit_code;
  }

  try {
    const std::string run_dir = run->run_dir ? run->run_dir->path().string() : std::string();
    if (control->rank() == 0 && run->config.output.progress)
      fmt::print(stderr, "effective config (saved to {}/config.yaml):\n{}", run_dir, ddp::dump_config(run->config));
    ddp::Trainer trainer(run->config, *run->comm, run->dataset, run->device, run->outputs());
    if (run->resume_from) trainer.resume(*run->resume_from);
    return report(trainer.run(ddp::stop_signal_received), run->config, *control, run_dir);
  } catch (const std::exception& e) {
    // Past set-up, the other ranks may be inside a collective: end the whole job.
    fmt::print(stderr, "ddp-train: error: rank {}: {}\n", control->rank(), ddp::message_of(e));
    std::fflush(stderr);
    ddp::MpiRuntime::abort_job(ddp::exit_code_of(e));
  }
}
