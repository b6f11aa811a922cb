#pragma once
// How a replica updates its parameters: torch::optim::SGD (PyTorch form: lr outside the
// momentum buffer), with LARS (You et al. 2017, arXiv 1708.03888) in front of it when
// optim.name=lars.
//
// LARS is done as a rescaling of the averaged gradients before SGD's step, not as an
// optimizer of its own: each weight tensor's gradient g becomes
//   d = ratio (g + wd w),   ratio = eta |w| / (|g| + wd |w|)  (1 where |w| or |g| is 0),
// and SGD, its own weight decay set to 0 because d already holds it, takes its usual step
// v = m v + d (Nesterov: d + m v), w -= lr v. That is the paper's update with the momentum
// in the same form as our SGD, and the lr (scaling rule, warmup, decay) multiplies the
// trust ratio. Keeping torch::optim::SGD keeps its momentum buffers, their checkpoint
// format and the rollback exactly as they are; an optimizer class of our own would have to
// repeat all of that to change one line of the step.
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "config/Config.h"

namespace ddp {

// SGD's options for `config`: base lr, momentum, Nesterov and weight decay; with LARS the
// weight decay is 0 here, since LarsScaling folds it into the gradient.
torch::optim::SGDOptions sgd_options(const Config& config);

class LarsScaling {
 public:
  LarsScaling(std::vector<torch::Tensor> parameters, double eta, double weight_decay);

  // Replaces every weight tensor's gradient by the direction SGD is to follow: the trust ratio
  // times (g + wd w); ratio 1 where |w| or |g| is 0. Runs on the device: no host synchronisation.
  void rescale_gradients();

  // Weight tensors (2-D and up) take the trust ratio and weight decay; biases (1-D, also a batch
  // norm's scale and shift) are excluded from both, as in MLPerf's LARS (its skip list): their
  // norms say little about a safe step. They take SGD's step without weight decay.
  static bool adapts(const torch::Tensor& parameter) { return parameter.dim() > 1; }

 private:
  std::vector<torch::Tensor> parameters_;
  double eta_, weight_decay_;
};

// A LarsScaling of `parameters` for optim.name=lars; nothing for sgd.
std::optional<LarsScaling> make_lars(const Config& config, std::vector<torch::Tensor> parameters);

}  // namespace ddp
