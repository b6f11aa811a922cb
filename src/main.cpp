// ddp-train: parse the command line, set up (train/Setup.h), train (train/Trainer.h),
// report. Every failure ends as one line on stderr and an exit code: 2 for bad input,
// 75 for a resumable stop, 1 for anything else.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdlib>
#include <optional>

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

// The command line, or the exit code when there is nothing to run (--help, a bad argument).
std::optional<int> parse_command_line(int argc, char** argv, ddp::CommandLine& command_line) {
  CLI::App app{"ddp-train: data-parallel SimpleNN training with learning-rate scaling rules", "ddp-train"};
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
  app.set_version_flag("--version", std::string("ddp-train ") + ddp::kVersion);
  app.footer("Config keys:\n" + ddp::describe_config_keys() +
             "\nLaunch: mpirun -np N build/ddp-train --config configs/mnist.yaml lr.rule=linear\n"
             "Continue a stopped run: mpirun -np N build/ddp-train --resume output.dir=DIR\n"
             "Check before spending time: build/ddp-train --dry-run --ranks N --config FILE [overrides]\n"
             "Exit codes: 0 success, 2 bad input (config, data, arguments), 75 stopped early with a checkpoint\n"
             "(a SIGTERM/SIGUSR1 or train.stop_after_steps; continue with --resume), 1 any other failure.");
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
  if (command_line.resume) command_line.overrides.push_back("checkpoint.resume=auto");
  return std::nullopt;
}

// Rank 0 says how the run ended; every rank returns the exit code.
int report(const ddp::TrainingResult& result, int rank, const std::string& run_dir) {
  const std::string saved = result.checkpoint.empty() ? std::string() : "checkpoint " + result.checkpoint;
  switch (result.outcome) {
    case ddp::Outcome::Completed:
      if (rank == 0)
        fmt::print("final test accuracy {:.4f}, test loss {:.4f}, {:.0f} samples/s, {:.1f} s; results in {}\n",
                   result.final_test_accuracy, result.final_test_loss, result.samples_per_second,
                   result.wall_seconds, run_dir);
      return ddp::kExitOk;
    case ddp::Outcome::Stopped:
      if (rank == 0)
        fmt::print(stderr, "ddp-train: stopped at step {} ({}); {}; continue with --resume\n", result.step,
                   ddp::stop_signal_received() ? fmt::format("signal {}", ddp::stop_signal_number())
                                               : std::string("train.stop_after_steps"),
                   saved.empty() ? std::string("checkpoints are off: nothing saved") : saved);
      return ddp::kExitStopped;
    case ddp::Outcome::NonFinite:
      if (rank == 0)
        fmt::print(stderr,
                   "ddp-train: error: non-finite loss or gradient {} on some rank; the last good state (step {}) "
                   "is in {}; lower optim.base_lr or set train.on_nonfinite=skip\n",
                   result.check_every > 1
                       ? fmt::format("in steps {}..{} (flags are read every {} steps: train.check_every)",
                                     result.step, result.nonfinite_step, result.check_every)
                       : fmt::format("at step {}", result.nonfinite_step),
                   result.step, saved.empty() ? std::string("no checkpoint (checkpoints are off)") : result.checkpoint);
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
    return report(trainer.run(ddp::stop_signal_received), control->rank(), run_dir);
  } catch (const std::exception& e) {
    // Past set-up, the other ranks may be inside a collective: end the whole job.
    fmt::print(stderr, "ddp-train: error: rank {}: {}\n", control->rank(), ddp::message_of(e));
    std::fflush(stderr);
    ddp::MpiRuntime::abort_job(ddp::exit_code_of(e));
  }
}
