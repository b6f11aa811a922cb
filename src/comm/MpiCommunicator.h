#pragma once
#include <mpi.h>

#include "comm/CollectiveDeadline.h"
#include "comm/Communicator.h"

namespace ddp {

// Collectives over MPI. Each is posted non-blocking and waited for by CollectiveDeadline:
// it returns when this rank's part is complete (the buffer holds the result), or the
// deadline ends the job.
class MpiCommunicator final : public Communicator {
 public:
  // Collective over `comm`, which it duplicates (the world and self communicators outlive it).
  explicit MpiCommunicator(MPI_Comm comm, DeadlineOptions deadline = {});

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend_name() const override { return "mpi"; }
  torch::Device device() const override { return torch::kCPU; }

  void allreduce(torch::Tensor& tensor, ReduceOp op) override;
  void allreduce(std::vector<torch::Tensor>& tensors, ReduceOp op) override;
  void broadcast(torch::Tensor& tensor, int root) override;
  void barrier() override;
  std::vector<std::string> allgather(const std::string& value) override;
  bool any(bool flag) override;
  void set_step(int64_t step) override { deadline_.set_step(step); }
  void set_timeout(double seconds) override { deadline_.set_timeout(seconds); }

  // Raw bytes from root to all (the NCCL bootstrap sends its ncclUniqueId this way).
  void broadcast_bytes(void* data, size_t bytes, int root);

 private:
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  CollectiveDeadline deadline_;  // owns comm_
  MPI_Comm comm_;
};

}  // namespace ddp
