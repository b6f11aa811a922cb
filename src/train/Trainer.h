#pragma once
// The training loop: epochs of sharded steps, evaluation, metrics, checkpoints, and the
// agreed stops (a signal, a step budget, a non-finite value). It sees the Communicator
// interface only; which backend sits behind it was decided in main.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <optional>

#include "checkpoint/Checkpoint.h"
#include "comm/Communicator.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "metrics/RunDirectory.h"

namespace ddp {

enum class Outcome {
  Completed,  // all epochs trained
  Stopped,    // a stop signal or train.stop_after_steps: checkpointed, resumable
  NonFinite,  // NaN/Inf with train.on_nonfinite=stop: last good state checkpointed
};

struct TrainingResult {
  Outcome outcome = Outcome::Completed;
  int64_t step = 0;  // steps done
  // NonFinite: the step whose check found the NaN/Inf. With deferred checks (train.check_every
  // > 1) it appeared in one of the steps from `step` (the last good state) to this one.
  int64_t nonfinite_step = -1;
  int64_t check_every = 1;
  double final_test_accuracy = 0;
  double final_test_loss = 0;
  double final_train_loss = 0;
  double samples_per_second = 0;
  double wall_seconds = 0;
  nlohmann::json final_b_simple;  // the gradient noise scale, or null where not measured
  std::string checkpoint;         // the last checkpoint written (rank 0), if any
  nlohmann::json summary;
};

class Trainer {
 public:
  // `run_dir` and `checkpoints` are set on rank 0 only: the other ranks write nothing.
  // `resume_from`, on every rank, is the checkpoint to continue from.
  Trainer(const Config& config, Communicator& comm, Dataset dataset, torch::Device device, RunDirectory* run_dir,
          CheckpointStore* checkpoints, std::optional<TrainingCheckpoint> resume_from = std::nullopt);
  TrainingResult run();

 private:
  const Config& config_;
  Communicator& comm_;
  Dataset dataset_;
  torch::Device device_;
  RunDirectory* run_dir_;
  CheckpointStore* checkpoints_;
  std::optional<TrainingCheckpoint> resume_from_;
};

// Throws InputError when `checkpoint` cannot continue this run: a different simulated
// world (ranks x virtual ranks) or local batch would silently change the experiment, and
// so would a different training set size or a different value of any key outside the
// few a resume may change.
void check_resume_compatible(const TrainingCheckpoint& checkpoint, const Config& config, int world_size,
                             int64_t train_samples, const std::string& source);

// train.check_every=0 (auto): every step on CPU, where reading the flags is free; every
// 50th on CUDA, where each read makes the host wait for the GPU.
int64_t resolve_check_every(const Config& config, torch::Device device);

// device=auto resolves to CUDA when this LibTorch has it and a GPU is visible.
torch::Device resolve_device(Device requested);

// One intra-op and BLAS thread per rank unless configured: N ranks on N cores must not
// oversubscribe them. Sets OpenBLAS's own pool too, which LibTorch does not control.
void set_compute_threads(int threads);

}  // namespace ddp
