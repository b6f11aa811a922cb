#pragma once
// The training loop: epochs of sharded steps, evaluation, metrics. It sees the
// Communicator interface only; which backend sits behind it was decided in main.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <optional>

#include "comm/Communicator.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "metrics/RunDirectory.h"

namespace ddp {

struct TrainingResult {
  double final_test_accuracy = 0;
  double final_test_loss = 0;
  double final_train_loss = 0;
  nlohmann::json final_b_simple;  // the gradient noise scale, or null where not measured
  double samples_per_second = 0;
  double wall_seconds = 0;
  nlohmann::json summary;
};

class Trainer {
 public:
  // `run_dir` is set on rank 0 only: the other ranks write nothing.
  Trainer(const Config& config, Communicator& comm, Dataset dataset, torch::Device device, RunDirectory* run_dir);
  TrainingResult run();

 private:
  const Config& config_;
  Communicator& comm_;
  Dataset dataset_;
  torch::Device device_;
  RunDirectory* run_dir_;
};

// device=auto resolves to CUDA when this LibTorch has it and a GPU is visible.
torch::Device resolve_device(Device requested);

// One intra-op and BLAS thread per rank unless configured: N ranks on N cores must not
// oversubscribe them. Sets OpenBLAS's own pool too, which LibTorch does not control.
void set_compute_threads(int threads);

}  // namespace ddp
