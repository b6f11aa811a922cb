#pragma once
// How the averaged gradient comes to be, one small class per comm.compression behind one
// interface, as PyTorch DDP's communication hooks (default_hooks.py, powerSGD_hook.py): the
// synchroniser calls whichever was configured and never knows which.
//   none      PlainAllreduce: every bucket all-reduced in float32, the exact mean.
//   fp16/bf16 HalfPrecisionAllreduce: each bucket pre-divided by the ranks, cast to 16 bits,
//             summed in 16 bits, cast back: half the bytes.
//   powersgd  PowerSgd (Vogels et al. 2019): each weight matrix sent as two thin factors,
//             with error feedback: a few KB instead of 400 KB.
// Every mode sends the buckets' extra slots (loss, health and stop flags, noise norms) as
// float32 and averages them exactly, so the flags every rank agrees on mean what they meant.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "config/Config.h"
#include "sync/GradientBuckets.h"

namespace ddp {

// comm.* as the synchroniser needs them: "auto" steps resolved, the seed for PowerSGD's
// first random projection (the same on every rank).
struct SyncOptions {
  Compression compression = Compression::None;
  int64_t powersgd_rank = 2;
  double powersgd_min_ratio = 2.0;
  int64_t compression_start_step = 0;
  int64_t local_sgd_period = 0;  // 0: off
  int64_t local_sgd_start_step = 0;
  uint64_t seed = 0;
};

// The options of `config`, with each "auto" step taken as `warmup_steps` (the end of the warmup).
SyncOptions sync_options(const Config& config, int64_t warmup_steps);
// How gradients travel, in words: "float32 all-reduce every step", "fp16 from step 117 (float32
// before)", "powersgd rank 2 (min ratio 2) from step 0", "... ; local SGD from step 117, parameters
// averaged every 4 steps".
std::string describe(const SyncOptions& options);
// Whether the exact mean gradient, which the noise scale needs, stops being formed at some step.
inline bool estimates_the_mean(const SyncOptions& options) {
  return options.compression != Compression::None || options.local_sgd_period > 0;
}

// What carries over from one step to the next, by name: what a checkpoint holds and a
// rollback restores.
using ExchangeState = std::map<std::string, torch::Tensor>;

class GradientExchange {
 public:
  virtual ~GradientExchange() = default;

  // Replaces the gradients in `buckets` by their mean over the ranks, or this mode's estimate
  // of it, and the extra slots by their exact mean. `step`: the steps done before this one.
  // Returns the bytes handed to collectives (the messages' sizes, as nccl-tests' size column).
  virtual int64_t exchange(GradientBuckets& buckets, int64_t step) = 0;
  // Whether exchange(step) forms the exact float32 mean, which the noise-scale measurement needs.
  virtual bool exact(int64_t step) const = 0;

  // A mode with memory (PowerSGD) computes the next state during exchange() but keeps the
  // current one until commit(): called when the step's update was applied. A step refused for a
  // NaN/Inf leaves the state as it was before that step.
  virtual void commit() {}
  virtual ExchangeState state() const { return {}; }
  // Throws std::runtime_error when `state` does not fit this exchange (another model or mode).
  virtual void set_state(const ExchangeState& state) { (void)state; }
  // Whether state() differs from rank to rank (PowerSGD's error feedback is each rank's own).
  virtual bool per_rank_state() const { return false; }
};

// The bytes GradientExchange::exchange hands to collectives at `step` (the steps done before it)
// for `parameters` and `extra_slots`, without a communicator: what --dry-run reports. Local SGD's
// steps without an exchange are the synchroniser's business, not counted here.
int64_t exchange_bytes(const SyncOptions& options, const std::vector<torch::Tensor>& parameters, int64_t extra_slots,
                       int64_t step);

std::unique_ptr<GradientExchange> make_gradient_exchange(Communicator& comm, const SyncOptions& options,
                                                         const std::vector<torch::Tensor>& parameters);

}  // namespace ddp
