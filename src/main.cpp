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
#include "train/Trainer.h"

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

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp-train: data-parallel SimpleNN training with learning-rate scaling rules", "ddp-train"};
  std::string config_path;
  std::vector<std::string> overrides;
  bool overwrite = false;
  app.add_option("--config", config_path, "YAML config file")->check(CLI::ExistingFile);
  app.add_option("overrides", overrides, "section.key=value overrides applied after the file");
  app.add_flag("--overwrite", overwrite, "reuse an output.dir that holds a previous run's results");
  app.set_version_flag("--version", std::string("ddp-train ") + ddp::kVersion);
  app.footer("Config keys:\n" + ddp::describe_config_keys() +
             "\nLaunch: mpirun -np N build/ddp-train --config configs/mnist.yaml lr.rule=linear\n"
             "Exit codes: 0 success, 2 bad input (config, data, arguments), 1 other failure.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (launcher_rank() != 0) return e.get_exit_code() == 0 ? ddp::kExitOk : ddp::kExitBadInput;
    const int code = app.exit(e);
    return code == 0 ? ddp::kExitOk : ddp::kExitBadInput;
  }

  ddp::MpiRuntime mpi(&argc, &argv);
  std::unique_ptr<ddp::Communicator> comm;
  std::optional<ddp::RunDirectory> run_dir;
  ddp::Config config;
  ddp::Dataset dataset;
  torch::Device device(torch::kCPU);

  // Set-up: each rank's failure is collected, then agreed on across ranks.
  std::exception_ptr setup_error;
  try {
    config = ddp::load_config(config_path, overrides);
    ddp::set_compute_threads(int(config.runtime.threads));
    device = ddp::resolve_device(config.device);
  } catch (...) {
    setup_error = std::current_exception();
  }
  try {
    // The communicator is needed to agree on anything, so it is made even after a config
    // error, on the device the config would have used (MPI when unknown).
    comm = ddp::make_communicator(setup_error ? ddp::Backend::Mpi : config.comm.backend,
                                  setup_error ? torch::Device(torch::kCPU) : device, config.comm.timeout_s);
  } catch (...) {
    if (!setup_error) setup_error = std::current_exception();
    comm = ddp::make_mpi_world_communicator();
  }
  if (!setup_error) {
    try {
      dataset = ddp::load_dataset(config.data.name, config.data.dir, config.data.normalize);
      if (comm->rank() == 0) {
        run_dir.emplace(ddp::RunDirectory::create(config.output.dir, overwrite));
        run_dir->write_text("config.yaml", ddp::dump_config(config));
      }
    } catch (...) {
      setup_error = std::current_exception();
    }
  }
  if (const int code = agree_on_failure(*comm, setup_error); code != ddp::kExitOk) return code;

  try {
    if (comm->rank() == 0 && config.output.progress)
      fmt::print(stderr, "effective config (saved to {}/config.yaml):\n{}", run_dir->path().string(),
                 ddp::dump_config(config));
    ddp::Trainer trainer(config, *comm, std::move(dataset), device, run_dir ? &*run_dir : nullptr);
    const ddp::TrainingResult result = trainer.run();
    if (comm->rank() == 0)
      fmt::print("final test accuracy {:.4f}, test loss {:.4f}, {:.0f} samples/s, {:.1f} s; results in {}\n",
                 result.final_test_accuracy, result.final_test_loss, result.samples_per_second, result.wall_seconds,
                 run_dir->path().string());
  } catch (const std::exception& e) {
    // Past set-up, the other ranks may be inside a collective: end the whole job.
    const int code = dynamic_cast<const ddp::InputError*>(&e) ? ddp::kExitBadInput : ddp::kExitFailure;
    fmt::print(stderr, "ddp-train: error: rank {}: {}\n", comm->rank(), e.what());
    std::fflush(stderr);
    ddp::MpiRuntime::abort_job(code);
  }
  return ddp::kExitOk;
}
