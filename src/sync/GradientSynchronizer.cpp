#include "sync/GradientSynchronizer.h"

namespace ddp {

GradientSynchronizer::GradientSynchronizer(Communicator& comm, std::vector<torch::Tensor> parameters,
                                           size_t bucket_bytes, int64_t extra_slots)
    : comm_(comm), buckets_(std::move(parameters), bucket_bytes, extra_slots) {}

void GradientSynchronizer::broadcast_parameters(int root) {
  torch::NoGradGuard no_grad;
  for (const auto& p : buckets_.parameters()) {
    torch::Tensor data = p.detach();  // shares storage: the broadcast writes the parameter
    comm_.broadcast(data, root);
  }
}

void GradientSynchronizer::synchronize() {
  for (auto& buffer : buckets_.buffers()) comm_.allreduce(buffer, ReduceOp::Average);
}

}  // namespace ddp
