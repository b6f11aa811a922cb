#pragma once
// Averages gradients across ranks after backward: one all-reduce per bucket. This is
// the only place gradients meet the Communicator.
#include <torch/torch.h>

#include "comm/Communicator.h"
#include "sync/GradientBuckets.h"

namespace ddp {

class GradientSynchronizer {
 public:
  // `extra_slots`: scalars averaged along with the gradients (see GradientBuckets).
  GradientSynchronizer(Communicator& comm, std::vector<torch::Tensor> parameters, size_t bucket_bytes,
                       int64_t extra_slots = 0);

  // Makes every rank start from rank 0's parameters.
  void broadcast_parameters(int root = 0);
  void zero_grad() { buckets_.zero(); }
  // Replaces each rank's gradient with the mean over ranks.
  void synchronize();

  GradientBuckets& buckets() { return buckets_; }

 private:
  Communicator& comm_;
  GradientBuckets buckets_;
};

}  // namespace ddp
