#include "sync/ModelAverager.h"

namespace ddp {

ModelAverager::ModelAverager(Communicator& comm, std::vector<torch::Tensor> parameters, int64_t period,
                             int64_t start_step)
    : comm_(comm), parameters_(std::move(parameters)), period_(period), start_step_(start_step) {}

int64_t ModelAverager::after_step(int64_t step) {
  if (!local(step) || (step + 1 - start_step_) % period_ != 0) return 0;
  return average(step + 1);
}

bool ModelAverager::may_differ(int64_t steps_done) const {
  if (!enabled() || steps_done <= start_step_) return false;
  // After a resume averaged_at_ is not known, but the period is: a stop right after the H-th
  // step resumes with equal parameters.
  return steps_done != averaged_at_ && (steps_done - start_step_) % period_ != 0;
}

int64_t ModelAverager::average_if_local(int64_t steps_done) {
  return may_differ(steps_done) ? average(steps_done) : 0;
}

void ModelAverager::with_mean(int64_t steps_done, const std::function<void()>& use) {
  if (!may_differ(steps_done)) return use();
  torch::NoGradGuard no_grad;
  gather();
  const torch::Tensor own = flat_.clone();
  comm_.allreduce(flat_, ReduceOp::Average);
  scatter(flat_);
  use();
  scatter(own);
}

int64_t ModelAverager::average(int64_t steps_done) {
  torch::NoGradGuard no_grad;
  gather();
  comm_.allreduce(flat_, ReduceOp::Average);
  scatter(flat_);
  averaged_at_ = steps_done;
  return int64_t(flat_.nbytes());
}

void ModelAverager::gather() {
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
}

void ModelAverager::scatter(const torch::Tensor& from) {
  int64_t offset = 0;
  for (auto& p : parameters_) {
    p.view({-1}).copy_(from.narrow(0, offset, p.numel()));
    offset += p.numel();
  }
}

}  // namespace ddp
