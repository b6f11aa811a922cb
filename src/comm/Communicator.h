#pragma once
// The one interface the trainer talks to for collectives (the role of c10d's
// ProcessGroup). MpiCommunicator and NcclCommunicator implement it; nothing above
// this header includes mpi.h or nccl.h.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddp {

enum class ReduceOp { Sum, Average, Max, Min };

// comm.timeout_s's default: how long a collective may wait for the other ranks.
constexpr double kDefaultCommTimeoutS = 300.0;

// A collective outlived its deadline on a communicator made to throw instead of ending the
// job (tests). Its ranks no longer agree on what was posted: use it for nothing else.
class CollectiveTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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
  // When the call returns, the result is "ready" in the sense of the device's stream order:
  // on MPI (CPU) the tensor holds it; on NCCL the collective is enqueued on the CUDA stream
  // that the model's kernels use, so any later kernel sees the result, while a host read
  // (.item(), .cpu()) waits for it as it waits for any kernel.
  // Float16 and BFloat16 are summed in their own precision, as NCCL does (each partial sum
  // rounded to the type): a sum of halves can overflow where float32's would not.
  virtual void allreduce(torch::Tensor& tensor, ReduceOp op) = 0;
  // Several in-place all-reduces in one go, each as above (dtypes may differ): posted together
  // and waited for together, so their latencies overlap instead of adding up (MPI: one
  // non-blocking collective each, waited for as one; NCCL: one group). Every rank passes the
  // same list in the same order.
  virtual void allreduce(std::vector<torch::Tensor>& tensors, ReduceOp op) = 0;
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;

  // Host-side control messages (consistency checks, agreement), whatever the backend.
  // Blocking: each returns with its result on every rank.
  virtual void barrier() = 0;
  virtual std::vector<std::string> allgather(const std::string& value) = 0;
  // Every rank gets the logical OR of `flag` (a stop request, a failure seen on one rank).
  virtual bool any(bool flag) = 0;

  // No wait on other ranks lasts for good. A collective or control message not complete
  // within `seconds` (comm.timeout_s; default kDefaultCommTimeoutS) ends the job (exit 1)
  // with a line naming it and the ranks and hosts that did not arrive; at a quarter of
  // that, a warning names them.
  virtual void set_timeout(double seconds) = 0;
  // The training step now running, which those lines name ("allreduce #812 (step 406)").
  // A store, no message: cheap enough to call every step.
  virtual void set_step(int64_t step) = 0;
};

}  // namespace ddp
