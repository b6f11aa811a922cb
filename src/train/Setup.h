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
  std::string config_path;             // empty: the defaults
  std::vector<std::string> overrides;  // section.key=value, applied after the file
  bool overwrite = false;              // reuse an output.dir that holds a previous run's results
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

}  // namespace ddp
