#pragma once
// The one interface the trainer talks to for collectives (the role of c10d's
// ProcessGroup). MpiCommunicator and NcclCommunicator implement it; nothing above
// this header includes mpi.h or nccl.h.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace ddp {

enum class ReduceOp { Sum, Average, Max, Min };

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank among the processes on this node (picks the GPU).
  virtual int local_rank() const = 0;
  virtual std::string backend_name() const = 0;
  // Tensors the data collectives accept: CPU for MPI, CUDA for NCCL.
  virtual torch::Device device() const = 0;

  // In place on a contiguous tensor on device(); every rank must pass the same shape and dtype.
  virtual void allreduce(torch::Tensor& tensor, ReduceOp op) = 0;
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;

  // Host-side control messages (consistency checks, agreement), whatever the backend.
  virtual void barrier() = 0;
  virtual std::vector<std::string> allgather(const std::string& value) = 0;
  // Every rank gets the logical OR of `flag` (a stop request, a failure seen on one rank).
  virtual bool any(bool flag) = 0;
};

}  // namespace ddp
