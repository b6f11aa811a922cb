#include "data/DistributedSampler.h"

#include "common/Errors.h"

namespace ddp {

DistributedSampler::DistributedSampler(int64_t dataset_size, int world_size, int rank, int64_t local_batch,
                                       bool shuffle, uint64_t seed, Remainder remainder, int virtual_ranks)
    : dataset_size_(dataset_size),
      world_size_(world_size),
      rank_(rank),
      local_batch_(local_batch),
      shuffle_(shuffle),
      seed_(seed),
      virtual_ranks_(virtual_ranks) {
  const int64_t global_batch = this->global_batch();
  steps_per_epoch_ = steps_for(dataset_size, global_batch, remainder);
  // Padding could make one epoch many copies of the data; a global batch must fit in it.
  if (global_batch > dataset_size)
    throw InputError("train.local_batch: global batch " + std::to_string(global_batch) + " (" +
                     std::to_string(local_batch) + " x " + std::to_string(world_size) + " ranks" +
                     (virtual_ranks > 1 ? " x " + std::to_string(virtual_ranks) + " virtual" : std::string()) +
                     ") exceeds the training set of " + std::to_string(dataset_size) +
                     " samples; use a smaller batch");
}

int64_t DistributedSampler::steps_for(int64_t dataset_size, int64_t global_batch, Remainder remainder) {
  return remainder == Remainder::Drop ? dataset_size / global_batch : (dataset_size + global_batch - 1) / global_batch;
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
  const int64_t needed = steps_per_epoch_ * global_batch();
  if (needed > dataset_size_) {
    // Pad by wrapping around, as PyTorch does, so every rank takes the same number of steps.
    const int64_t repeats = (needed + dataset_size_ - 1) / dataset_size_;
    order = order.repeat({repeats});
  }
  order = order.narrow(0, 0, needed);
  const int64_t slots = int64_t(world_size_) * virtual_ranks_;
  if (virtual_ranks_ == 1) return order.slice(0, rank_, needed, slots).contiguous();
  std::vector<torch::Tensor> shards;  // one [steps, local_batch] per virtual rank
  for (int j = 0; j < virtual_ranks_; ++j)
    shards.push_back(
        order.slice(0, int64_t(rank_) * virtual_ranks_ + j, needed, slots).reshape({steps_per_epoch_, local_batch_}));
  return torch::stack(shards, 1).reshape({-1});
}

}  // namespace ddp
