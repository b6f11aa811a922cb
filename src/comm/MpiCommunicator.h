#pragma once
#include <mpi.h>

#include "comm/Communicator.h"

namespace ddp {

class MpiCommunicator final : public Communicator {
 public:
  // Does not own `comm`: the world and self communicators outlive it.
  explicit MpiCommunicator(MPI_Comm comm);

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend_name() const override { return "mpi"; }
  torch::Device device() const override { return torch::kCPU; }

  void allreduce(torch::Tensor& tensor, ReduceOp op) override;
  void broadcast(torch::Tensor& tensor, int root) override;
  void barrier() override;
  std::vector<std::string> allgather(const std::string& value) override;
  bool any(bool flag) override;

  // Raw bytes from root to all (the NCCL bootstrap sends its ncclUniqueId this way).
  void broadcast_bytes(void* data, size_t bytes, int root);

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
};

}  // namespace ddp
