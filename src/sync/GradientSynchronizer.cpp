#include "sync/GradientSynchronizer.h"

namespace ddp {

GradientSynchronizer::GradientSynchronizer(Communicator& comm, std::vector<torch::Tensor> parameters,
                                           size_t bucket_bytes, int64_t extra_slots, const SyncOptions& options)
    : comm_(comm),
      buckets_(parameters, bucket_bytes, extra_slots),
      exchange_(make_gradient_exchange(comm, options, parameters)),
      averager_(comm, parameters, options.local_sgd_period, options.local_sgd_start_step) {}

void GradientSynchronizer::broadcast_parameters(int root) {
  torch::NoGradGuard no_grad;
  for (const auto& p : buckets_.parameters()) {
    torch::Tensor data = p.detach();  // shares storage: the broadcast writes the parameter
    comm_.broadcast(data, root);
  }
}

int64_t GradientSynchronizer::synchronize(int64_t step) {
  exchanged_ = !averager_.local(step);
  if (exchanged_) return exchange_->exchange(buckets_, step);
  // Local SGD: the gradients stay this rank's own; the flags are still agreed every step.
  torch::Tensor& extras = buckets_.extras();
  if (!extras.defined()) return 0;
  comm_.allreduce(extras, ReduceOp::Average);
  return int64_t(extras.nbytes());
}

}  // namespace ddp
