#pragma once
// Local SGD (comm.local_sgd_period = H), as PyTorch's PeriodicModelAverager with post-local
// SGD (Lin et al., "Don't Use Large Mini-Batches, Use Local SGD", ICLR 2020): from
// comm.local_sgd_start_step on, every rank steps on its own gradients, and every H steps the
// ranks' parameters are replaced by their mean. Before that step the gradients are all-reduced
// as usual (the first steps, and the warmup, are the most sensitive to stale replicas). One
// all-reduce of the parameters every H steps instead of one of the gradients every step: 1/H of
// the bytes.
//
// Momentum buffers are not averaged, as in PeriodicModelAverager and Lin et al.: each rank's
// buffer is the history of its own steps, which its next local steps continue; averaging them
// too would double the bytes of every averaging for no gain those papers found. So between
// averagings (and in momentum always) the replicas differ: a checkpoint holds every rank's
// model and optimizer state.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "comm/Communicator.h"

namespace ddp {

class ModelAverager {
 public:
  // period 0: off (every step all-reduces gradients; nothing is averaged).
  ModelAverager(Communicator& comm, std::vector<torch::Tensor> parameters, int64_t period, int64_t start_step);

  bool enabled() const { return period_ > 0; }
  // Whether step `step` (the steps done before it) keeps its gradients to this rank.
  bool local(int64_t step) const { return enabled() && step >= start_step_; }
  // After step `step`'s update: the H-th local step since the last averaging averages the
  // parameters. Returns the bytes handed to the all-reduce (0 when it did not average).
  int64_t after_step(int64_t step);
  // Whether the ranks' parameters can differ after `steps_done` steps: a local step was taken and
  // none of the averagings since (the H-th step's, or average_if_local's at the same step).
  // Averaging equal values again is not free: an all-reduce, and with a rank count that is not a
  // power of two, elements moved by an ulp.
  bool may_differ(int64_t steps_done) const;
  // The ranks' parameters become their mean now, if they may differ; returns the bytes sent.
  int64_t average_if_local(int64_t steps_done);
  // Runs `use` with the ranks' mean (if they may differ), then puts each rank's own parameters
  // back: a mid-epoch evaluation of one model that leaves training as it was.
  void with_mean(int64_t steps_done, const std::function<void()>& use);

 private:
  void gather();                           // flat_ <- the parameters
  void scatter(const torch::Tensor& from);  // the parameters <- from
  int64_t average(int64_t steps_done);

  Communicator& comm_;
  std::vector<torch::Tensor> parameters_;
  int64_t period_, start_step_;
  torch::Tensor flat_;  // every parameter, for one all-reduce (allocated at the first averaging)
  int64_t averaged_at_ = -1;  // the steps done when the parameters were last averaged (-1: not yet)
};

}  // namespace ddp
