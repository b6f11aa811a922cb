#pragma once
// A world of one rank without MPI, for unit tests of what sits on top of the Communicator: every
// collective of one rank leaves its data as it is. It counts the all-reduces it was handed.
#include "comm/Communicator.h"

namespace ddp::testing_sync {

class SingleRankCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string backend_name() const override { return "single"; }
  torch::Device device() const override { return torch::kCPU; }
  void allreduce(torch::Tensor&, ReduceOp) override { ++allreduces; }
  void allreduce(std::vector<torch::Tensor>& tensors, ReduceOp) override { allreduces += int64_t(tensors.size()); }
  void broadcast(torch::Tensor&, int) override {}
  void barrier() override {}
  std::vector<std::string> allgather(const std::string& value) override { return {value}; }
  bool any(bool flag) override { return flag; }
  void set_timeout(double) override {}
  void set_step(int64_t) override {}

  int64_t allreduces = 0;
};

}  // namespace ddp::testing_sync
