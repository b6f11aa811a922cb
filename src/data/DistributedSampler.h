#pragma once
// Splits an epoch's sample order across ranks, as torch.utils.data.DistributedSampler:
// every rank builds the same permutation from (seed, epoch) and takes every
// world_size-th index starting at its rank. Interleaving makes the union of all ranks'
// step-s batches a contiguous block of the permutation, which is exactly the batch one
// rank with the global batch would take at step s (the equivalence the tests prove).
#include <torch/torch.h>

#include <cstdint>

#include "config/Config.h"

namespace ddp {

class DistributedSampler {
 public:
  // `local_batch` is per rank per step; remainder decides what happens to samples
  // that do not fill a whole global batch (drop them, or pad by wrapping around).
  DistributedSampler(int64_t dataset_size, int world_size, int rank, int64_t local_batch, bool shuffle,
                     uint64_t seed, Remainder remainder);

  // This rank's indices for `epoch`, int64 [steps_per_epoch() * local_batch].
  torch::Tensor indices(int64_t epoch) const;
  // Identical on every rank, so no rank waits in an all-reduce that others skipped.
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t local_batch() const { return local_batch_; }

 private:
  int64_t dataset_size_;
  int world_size_;
  int rank_;
  int64_t local_batch_;
  bool shuffle_;
  uint64_t seed_;
  int64_t steps_per_epoch_;
};

}  // namespace ddp
