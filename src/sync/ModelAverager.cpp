#include "sync/ModelAverager.h"

namespace ddp {

ModelAverager::ModelAverager(Communicator& comm, std::vector<torch::Tensor> parameters, int64_t period,
                             int64_t start_step)
    : comm_(comm), parameters_(std::move(parameters)), period_(period), start_step_(start_step) {}

int64_t ModelAverager::after_step(int64_t step) {
  if (!local(step) || (step + 1 - start_step_) % period_ != 0) return 0;
  return average();
}

int64_t ModelAverager::average_if_local(int64_t steps_done) {
  return enabled() && steps_done > start_step_ ? average() : 0;
}

int64_t ModelAverager::average() {
  torch::NoGradGuard no_grad;
  if (!flat_.defined()) {
    int64_t size = 0;
    for (const auto& p : parameters_) size += p.numel();
    flat_ = torch::empty({size}, parameters_.front().options());
  }
  int64_t offset = 0;
  for (const auto& p : parameters_) {
    flat_.narrow(0, offset, p.numel()).copy_(p.view({-1}));
    offset += p.numel();
  }
  comm_.allreduce(flat_, ReduceOp::Average);
  offset = 0;
  for (auto& p : parameters_) {
    p.view({-1}).copy_(flat_.narrow(0, offset, p.numel()));
    offset += p.numel();
  }
  return int64_t(flat_.nbytes());
}

}  // namespace ddp
