#include "data/DistributedSampler.h"

#include "common/Errors.h"

namespace ddp {

DistributedSampler::DistributedSampler(int64_t dataset_size, int world_size, int rank, int64_t local_batch,
                                       bool shuffle, uint64_t seed, Remainder remainder)
    : dataset_size_(dataset_size),
      world_size_(world_size),
      rank_(rank),
      local_batch_(local_batch),
      shuffle_(shuffle),
      seed_(seed) {
  const int64_t global_batch = local_batch * world_size;
  steps_per_epoch_ = remainder == Remainder::Drop ? dataset_size / global_batch
                                                  : (dataset_size + global_batch - 1) / global_batch;
  if (steps_per_epoch_ == 0)
    throw InputError("train.local_batch: global batch " + std::to_string(global_batch) + " (" +
                     std::to_string(local_batch) + " x " + std::to_string(world_size) +
                     " ranks) exceeds the training set of " + std::to_string(dataset_size) +
                     " samples; use a smaller batch or train.remainder=pad");
}

torch::Tensor DistributedSampler::indices(int64_t epoch) const {
  torch::Tensor order;
  if (shuffle_) {
    // A generator seeded by (seed, epoch) alone: the order must not depend on what
    // else consumed random numbers, or ranks and resumed runs would disagree.
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + uint64_t(epoch));
    order = torch::randperm(dataset_size_, generator, torch::kInt64);
  } else {
    order = torch::arange(dataset_size_, torch::kInt64);
  }
  const int64_t needed = steps_per_epoch_ * local_batch_ * world_size_;
  if (needed > dataset_size_) {
    // Pad by wrapping around, as PyTorch does, so every rank takes the same number of steps.
    const int64_t repeats = (needed + dataset_size_ - 1) / dataset_size_;
    order = order.repeat({repeats});
  }
  order = order.narrow(0, 0, needed);
  return order.slice(0, rank_, needed, world_size_).contiguous();
}

}  // namespace ddp
