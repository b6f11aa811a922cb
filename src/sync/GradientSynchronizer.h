#pragma once
// Everything that makes the replicas' gradients (and parameters) agree, and the only place
// gradients meet the Communicator: after backward, the buckets are exchanged in the way
// comm.compression says (GradientExchange: plain, fp16, bf16, PowerSGD); under local SGD
// (ModelAverager) they stay local after its start step, and the parameters are averaged every
// H steps instead. The buckets' extra slots (the flags every step's guarantees rest on) are
// averaged exactly in every mode, every step.
#include <torch/torch.h>

#include <memory>

#include "comm/Communicator.h"
#include "sync/GradientBuckets.h"
#include "sync/GradientExchange.h"
#include "sync/ModelAverager.h"

namespace ddp {

class GradientSynchronizer {
 public:
  // `extra_slots`: scalars averaged along with the gradients (see GradientBuckets).
  GradientSynchronizer(Communicator& comm, std::vector<torch::Tensor> parameters, size_t bucket_bytes,
                       int64_t extra_slots = 0, const SyncOptions& options = {});

  // Makes every rank start from rank 0's parameters.
  void broadcast_parameters(int root = 0);
  void zero_grad() { buckets_.zero(); }
  // Step `step` (the steps done before it), before its update: replaces each rank's gradients
  // by their mean over ranks (or the compression's estimate of it; under local SGD, past its
  // start, leaves them as they are) and the extra slots by their mean. Returns the bytes sent.
  int64_t synchronize(int64_t step);
  // Whether synchronize(step) forms the exact float32 mean (the noise scale is measurable).
  bool exact_mean(int64_t step) const { return !averager_.local(step) && exchange_->exact(step); }
  // Whether it forms an estimate of the mean, whose finiteness the caller must check itself
  // (a 16-bit cast overflows, a factor can go NaN on every rank at once).
  bool estimated_mean(int64_t step) const { return !averager_.local(step) && !exchange_->exact(step); }
  // The step's update was applied: the exchange's state moves on (see GradientExchange::commit).
  // Only after a step that exchanged: a local SGD step computed nothing, and what a refused
  // step before it computed must not be installed.
  void commit() {
    if (exchanged_) exchange_->commit();
    exchanged_ = false;
  }
  // After step `step`'s update (applied or refused): local SGD averages the parameters every
  // H steps. Returns the bytes sent.
  int64_t after_update(int64_t step) { return averager_.after_step(step); }
  // Local SGD: the parameters become the ranks' mean now, if local steps may have made them
  // differ (at an epoch's end, before evaluating). Returns the bytes sent.
  int64_t average_parameters(int64_t steps_done) { return averager_.average_if_local(steps_done); }
  // Local SGD: runs `use` with the ranks' mean parameters, then puts each rank's own back.
  void with_mean_parameters(int64_t steps_done, const std::function<void()>& use) {
    averager_.with_mean(steps_done, use);
  }
  // Whether ranks hold state of their own that a checkpoint must keep for each: PowerSGD's
  // error feedback, and under local SGD each rank's parameters and momentum.
  bool per_rank_state() const { return exchange_->per_rank_state() || averager_.enabled(); }
  bool local_sgd() const { return averager_.enabled(); }
  ExchangeState state() const { return exchange_->state(); }
  void set_state(const ExchangeState& state) { exchange_->set_state(state); }

  GradientBuckets& buckets() { return buckets_; }

 private:
  Communicator& comm_;
  GradientBuckets buckets_;
  std::unique_ptr<GradientExchange> exchange_;
  ModelAverager averager_;
  bool exchanged_ = false;  // the last synchronize() went through the exchange
};

}  // namespace ddp
