// ddp-train: wires config, data, communicator and trainer together. Every failure ends
// as one line on stderr and an exit code: 2 for bad input, 1 for anything else.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <cstdlib>
#include <iostream>

#include "comm/MpiRuntime.h"
#include "common/Errors.h"
#include "common/Version.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "metrics/RunDirectory.h"
#include "checkpoint/Checkpoint.h"
#include "model/SimpleNN.h"
#include "train/Consistency.h"
#include "train/StopSignal.h"
#include "train/Trainer.h"

#include <filesystem>

namespace {

// Before MPI is up, the launcher's variables tell which rank we are, so that only one
// rank prints argument errors.
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

int exit_code_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ddp::InputError&) {
    return ddp::kExitBadInput;
  } catch (...) {
    return ddp::kExitFailure;
  }
}

// LibTorch's errors carry a C++ backtrace that means nothing to a user: keep the message.
std::string message_of(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e)) return torch_error->what_without_backtrace();
  return e.what();
}

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return message_of(e);
  } catch (...) {
    return "unknown error";
  }
}

// Set-up steps that may fail on some ranks only (a missing file on one node) must not
// leave the others waiting in a collective: every rank reports its outcome, rank 0
// prints each failure with its rank, and all ranks exit with the same code.
int agree_on_failure(ddp::Communicator& comm, const std::exception_ptr& error) {
  const std::string mine = error ? std::to_string(exit_code_of(error)) + " " + message_of(error) : "";
  const std::vector<std::string> all = comm.allgather(mine);
  int code = ddp::kExitOk;
  // Ranks that failed the same way are reported on one line.
  std::vector<std::pair<std::string, std::vector<int>>> failures;
  for (int r = 0; r < int(all.size()); ++r) {
    if (all[r].empty()) continue;
    const auto space = all[r].find(' ');
    code = std::max(code, std::atoi(all[r].substr(0, space).c_str()));
    const std::string message = all[r].substr(space + 1);
    auto same = std::find_if(failures.begin(), failures.end(), [&](const auto& f) { return f.first == message; });
    if (same == failures.end()) failures.push_back({message, {r}});
    else same->second.push_back(r);
  }
  if (comm.rank() == 0) {
    for (const auto& [message, ranks] : failures) {
      std::string who;
      if (comm.size() > 1) {
        const bool contiguous = ranks.back() - ranks.front() + 1 == int(ranks.size());
        if (ranks.size() == 1) who = fmt::format("rank {}: ", ranks[0]);
        else if (contiguous) who = fmt::format("ranks {}-{}: ", ranks.front(), ranks.back());
        else who = fmt::format("ranks {}: ", fmt::join(ranks, ","));
      }
      fmt::print(stderr, "ddp-train: error: {}{}\n", who, message);
    }
  }
  return code;
}

// Rank 0: the run directory, the checkpoint store, and the checkpoint to resume from.
// A resumed run keeps its directory and the metrics of the epochs the checkpoint has;
// anything else that would reuse a finished run's directory needs --overwrite.
void prepare_run_directory(const ddp::Config& config, bool overwrite, std::optional<ddp::RunDirectory>& run_dir,
                           std::optional<ddp::CheckpointStore>& checkpoints, std::string& resume_bytes,
                           std::string& resume_source) {
  namespace fs = std::filesystem;
  const bool resume = config.checkpoint.resume == ddp::ResumePolicy::Auto;
  if (resume && config.output.dir.empty())
    throw ddp::InputError("--resume (checkpoint.resume=auto) needs output.dir: the run directory to continue");
  auto checkpoint_dir = [&](const fs::path& run) {
    return config.checkpoint.dir.empty() ? run / "checkpoints" : fs::path(config.checkpoint.dir);
  };
  if (resume) {
    const ddp::CheckpointStore store(checkpoint_dir(config.output.dir), int(config.checkpoint.keep));
    auto found = store.newest_valid([](const std::string& w) { fmt::print(stderr, "ddp-train: warning: {}\n", w); });
    if (found) {
      resume_bytes = ddp::encode_checkpoint(found->second);
      resume_source = found->first.string();
      run_dir.emplace(ddp::RunDirectory::reopen(config.output.dir, found->second.meta.at("epoch").get<int64_t>()));
      // Checkpoints past the one resumed from (corrupt, or from a later stop) belong to a
      // future this run will rewrite; left in place they would shadow its own.
      store.remove_after(found->second.meta.at("step").get<int64_t>());
      fmt::print(stderr, "ddp-train: resuming from {}\n", resume_source);
    } else {
      // --resume asks to continue this directory: with nothing to continue from, it
      // starts over in it.
      fmt::print(stderr, "ddp-train: no valid checkpoint in {}; starting from step 0\n", store.dir().string());
      overwrite = true;
    }
  }
  if (!run_dir) {
    run_dir.emplace(ddp::RunDirectory::create(config.output.dir, overwrite));
    // A fresh run: checkpoints of an earlier run here must not be mistaken for its own.
    ddp::CheckpointStore(checkpoint_dir(run_dir->path()), int(config.checkpoint.keep)).remove_after(-1);
  }
  run_dir->write_text("config.yaml", ddp::dump_config(config));
  if (config.checkpoint.every_steps > 0 || config.checkpoint.every_epochs > 0)
    checkpoints.emplace(checkpoint_dir(run_dir->path()), int(config.checkpoint.keep));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp-train: data-parallel SimpleNN training with learning-rate scaling rules", "ddp-train"};
  std::string config_path;
  std::vector<std::string> overrides;
  bool overwrite = false, resume = false;
  app.add_option("--config", config_path, "YAML config file")->check(CLI::ExistingFile);
  app.add_option("overrides", overrides, "section.key=value overrides applied after the file");
  app.add_flag("--overwrite", overwrite, "reuse an output.dir that holds a previous run's results");
  app.add_flag("--resume", resume, "continue from the newest valid checkpoint in output.dir (checkpoint.resume=auto)");
  app.set_version_flag("--version", std::string("ddp-train ") + ddp::kVersion);
  app.footer("Config keys:\n" + ddp::describe_config_keys() +
             "\nLaunch: mpirun -np N build/ddp-train --config configs/mnist.yaml lr.rule=linear\n"
             "Exit codes: 0 success, 2 bad input (config, data, arguments), 75 stopped early with a checkpoint\n"
             "(a SIGTERM/SIGUSR1 or train.stop_after_steps; continue with --resume), 1 any other failure.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (launcher_rank() != 0) return e.get_exit_code() == 0 ? ddp::kExitOk : ddp::kExitBadInput;
    const int code = app.exit(e);
    return code == 0 ? ddp::kExitOk : ddp::kExitBadInput;
  }
  if (resume) overrides.push_back("checkpoint.resume=auto");

  ddp::MpiRuntime mpi(&argc, &argv);
  ddp::install_stop_signal_handlers();
  // Set-up talks over MPI whatever the training backend: ranks must agree on every
  // failure before any of them enters a collective the others would never join.
  const std::unique_ptr<ddp::Communicator> control = ddp::make_mpi_world_communicator();
  std::unique_ptr<ddp::Communicator> comm;  // the training communicator
  std::optional<ddp::RunDirectory> run_dir;
  std::optional<ddp::CheckpointStore> checkpoints;
  std::string resume_bytes, resume_source;
  ddp::Config config;
  ddp::Dataset dataset;
  torch::Device device(torch::kCPU);

  // Set-up: each rank's failure is collected, then agreed on across ranks.
  std::exception_ptr setup_error;
  try {
    config = ddp::load_config(config_path, overrides);
    ddp::set_compute_threads(int(config.runtime.threads));
    device = ddp::resolve_device(config.device);
    dataset = ddp::load_dataset(config.data.name, config.data.dir, config.data.normalize);
    if (control->rank() == 0) prepare_run_directory(config, overwrite, run_dir, checkpoints, resume_bytes, resume_source);
  } catch (...) {
    setup_error = std::current_exception();
  }
  if (const int code = agree_on_failure(*control, setup_error); code != ddp::kExitOk) return code;

  // Every rank checks the checkpoint to resume from and that all run the same experiment
  // on the same kind of device.
  std::optional<ddp::TrainingCheckpoint> resume_from;
  try {
    const std::vector<std::string> from_rank0 = control->allgather(control->rank() == 0 ? resume_bytes : std::string());
    const std::string source = control->allgather(control->rank() == 0 ? resume_source : std::string())[0];
    if (!from_rank0[0].empty()) {
      resume_from = ddp::decode_checkpoint(from_rank0[0], source);
      ddp::check_resume_compatible(*resume_from, config, control->size(), dataset.train.size(), source);
    }
    ddp::Fingerprint fingerprint;
    for (const auto& [key, value] : ddp::config_entries(config))
      if (key != "output.dir" && key != "checkpoint.dir") fingerprint.emplace_back("config key '" + key + "'", value);
    fingerprint.emplace_back("binary version", std::string(ddp::kVersion) + " built " + __DATE__ " " __TIME__);
    fingerprint.emplace_back("training device type", device.is_cuda() ? "cuda" : "cpu");
    fingerprint.emplace_back("training set size", std::to_string(dataset.train.size()));
    fingerprint.emplace_back("test set size", std::to_string(dataset.test.size()));
    fingerprint.emplace_back("model parameter count", std::to_string(ddp::parameter_count(*ddp::SimpleNN())));
    ddp::check_consistency(*control, fingerprint);
  } catch (...) {
    setup_error = std::current_exception();
  }
  if (const int code = agree_on_failure(*control, setup_error); code != ddp::kExitOk) return code;

  // Only now, with every rank agreed on the device, may a backend with collective
  // set-up of its own (NCCL) start.
  try {
    comm = ddp::make_communicator(config.comm.backend, device, config.comm.timeout_s);
  } catch (...) {
    setup_error = std::current_exception();
  }
  if (const int code = agree_on_failure(*control, setup_error); code != ddp::kExitOk) return code;

  try {
    if (comm->rank() == 0 && config.output.progress)
      fmt::print(stderr, "effective config (saved to {}/config.yaml):\n{}", run_dir->path().string(),
                 ddp::dump_config(config));
    ddp::Trainer trainer(config, *comm, std::move(dataset), device, run_dir ? &*run_dir : nullptr,
                         checkpoints ? &*checkpoints : nullptr, std::move(resume_from));
    const ddp::TrainingResult result = trainer.run();
    switch (result.outcome) {
      case ddp::Outcome::Completed:
        if (comm->rank() == 0)
          fmt::print("final test accuracy {:.4f}, test loss {:.4f}, {:.0f} samples/s, {:.1f} s; results in {}\n",
                     result.final_test_accuracy, result.final_test_loss, result.samples_per_second,
                     result.wall_seconds, run_dir->path().string());
        return ddp::kExitOk;
      case ddp::Outcome::Stopped:
        if (comm->rank() == 0)
          fmt::print(stderr, "ddp-train: stopped at step {} ({}); {}; continue with --resume\n", result.step,
                     ddp::stop_signal_received() ? fmt::format("signal {}", ddp::stop_signal_number())
                                                 : std::string("train.stop_after_steps"),
                     result.checkpoint.empty() ? std::string("checkpoints are off: nothing saved")
                                               : "checkpoint " + result.checkpoint);
        return ddp::kExitStopped;
      case ddp::Outcome::NonFinite:
        if (comm->rank() == 0)
          fmt::print(stderr,
                     "ddp-train: error: non-finite loss or gradient {} on some rank; the last good state (step {}) "
                     "is in {}; lower optim.base_lr or set train.on_nonfinite=skip\n",
                     result.check_every > 1
                         ? fmt::format("in steps {}..{} (flags are read every {} steps: train.check_every)",
                                       result.step, result.nonfinite_step, result.check_every)
                         : fmt::format("at step {}", result.nonfinite_step),
                     result.step,
                     result.checkpoint.empty() ? std::string("no checkpoint (checkpoints are off)")
                                               : result.checkpoint);
        return ddp::kExitFailure;
    }
  } catch (const std::exception& e) {
    // Past set-up, the other ranks may be inside a collective: end the whole job.
    const int code = dynamic_cast<const ddp::InputError*>(&e) ? ddp::kExitBadInput : ddp::kExitFailure;
    fmt::print(stderr, "ddp-train: error: rank {}: {}\n", comm->rank(), message_of(e));
    std::fflush(stderr);
    ddp::MpiRuntime::abort_job(code);
  }
  return ddp::kExitOk;
}
