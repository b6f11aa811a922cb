#pragma once
// Everything before the first step: the config, the device, the data, the checkpoint to
// resume from, the training communicator and the run directory. Each stage is tried on
// every rank, then the ranks agree: all go on, or all stop with one exit code after rank
// 0 printed each rank's failure ("try locally, agree, proceed"). Nothing is written to
// disk before every check that can fail has passed, so a start that fails leaves nothing
// behind that would block its corrected rerun.
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/Checkpoint.h"
#include "comm/Communicator.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "metrics/RunDirectory.h"
#include "train/Trainer.h"

namespace ddp {

struct CommandLine {
  std::string config_path;             // empty: the defaults (or, with --resume, output.dir's config.yaml)
  std::vector<std::string> overrides;  // section.key=value, applied after the file
  bool overwrite = false;              // reuse an output.dir that holds a previous run's results
  bool resume = false;                 // --resume: continue the run in output.dir
  bool dry_run = false;                // --dry-run: check everything, print the run's shape, train nothing
  int dry_run_ranks = 0;               // --ranks: check as this many ranks would run (0: the ranks launched)
};

struct PreparedRun {
  Config config;
  Dataset dataset;
  torch::Device device{torch::kCPU};
  std::unique_ptr<Communicator> comm;             // the training communicator
  std::optional<TrainingCheckpoint> resume_from;  // every rank, when continuing a run
  std::optional<RunDirectory> run_dir;            // rank 0 only
  std::optional<CheckpointStore> checkpoints;     // rank 0 only, when checkpoints are on

  TrainerOutputs outputs() {
    return {run_dir ? &*run_dir : nullptr, checkpoints ? &*checkpoints : nullptr};
  }
};

// The ranks agreed that set-up failed; rank 0 has printed why.
struct SetupFailed {
  int exit_code;
};

// Collective over `control` (MPI, whatever the training backend): every rank calls it.
// Throws SetupFailed on every rank when any rank failed.
PreparedRun prepare_run(const CommandLine& command_line, Communicator& control);

// --dry-run: every check prepare_run makes before it would write or start a backend (the config,
// the data, the run's shape for the ranks launched or --ranks, the resume source), then rank 0
// prints what the run would be. Nothing is written. Collective; returns the exit code (0, or 2
// after rank 0 printed each rank's failure).
int dry_run(const CommandLine& command_line, Communicator& control);

// The config file a command line reads: --config's, or with --resume and no --config the run's
// own DIR/config.yaml (output.dir=DIR among the overrides). Throws InputError when a resume names
// no output.dir or the directory holds no config.yaml.
std::string config_path_of(const CommandLine& command_line);

// The config as a run directory keeps it (config.yaml): the keys that belong to one invocation,
// not to the run (train.stop_after_steps, checkpoint.resume), at their defaults, so that
// `--resume` from it runs to the end.
Config saved_form(Config config);

}  // namespace ddp
