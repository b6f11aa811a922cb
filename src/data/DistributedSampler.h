#pragma once
// Splits an epoch's sample order across ranks, as torch.utils.data.DistributedSampler:
// every rank builds the same permutation from (seed, epoch) and takes every
// world_size-th index starting at its rank. Interleaving makes the union of all ranks'
// step-s batches a contiguous block of the permutation, which is exactly the batch one
// rank with the global batch would take at step s (the equivalence the tests prove).
//
// Virtual ranks: a process may stand for `virtual_ranks` consecutive ranks of a larger
// world (rank r holds virtual ranks r*v .. r*v+v-1) and take their micro-batches one
// after the other, so N processes x v simulate N*v ranks with the same samples.
#include <torch/torch.h>

#include <cstdint>

#include "config/Config.h"

namespace ddp {

class DistributedSampler {
 public:
  // `local_batch` is per (virtual) rank per step; remainder decides what happens to
  // samples that do not fill a whole global batch (drop them, or pad by wrapping around).
  DistributedSampler(int64_t dataset_size, int world_size, int rank, int64_t local_batch, bool shuffle,
                     uint64_t seed, Remainder remainder, int virtual_ranks = 1);

  // Steps an epoch of `dataset_size` samples takes at `global_batch` under `remainder`.
  static int64_t steps_for(int64_t dataset_size, int64_t global_batch, Remainder remainder);

  // This process's indices for `epoch`, int64 [steps_per_epoch() * batch_per_step()]:
  // step by step, and within a step virtual rank by virtual rank (local_batch each).
  torch::Tensor indices(int64_t epoch) const;
  // Identical on every rank, so no rank waits in an all-reduce that others skipped.
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int virtual_ranks() const { return virtual_ranks_; }
  int64_t batch_per_step() const { return local_batch_ * virtual_ranks_; }
  int64_t global_batch() const { return local_batch_ * virtual_ranks_ * world_size_; }

 private:
  int64_t dataset_size_;
  int world_size_;
  int rank_;
  int64_t local_batch_;
  bool shuffle_;
  uint64_t seed_;
  int virtual_ranks_;
  int64_t steps_per_epoch_;
};

}  // namespace ddp
