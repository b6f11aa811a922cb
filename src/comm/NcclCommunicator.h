#pragma once
// NCCL collectives on device memory, bootstrapped over MPI the llm.c way: rank 0 makes
// the ncclUniqueId, MPI broadcasts it, every rank joins with ncclCommInitRank.
//
// The communicator is non-blocking (ncclConfig_t.blocking = 0), so that no NCCL call can wait
// without bound: init, and the first collective, where NCCL connects to its peers. In that
// mode NCCL hands every call over 2+ ranks to its own thread and answers ncclInProgress; it
// must then be polled (ncclCommGetAsyncError) until it answers otherwise before any other call
// on the communicator or work on its stream. Every call here is settled that way, within
// comm.timeout_s (settle_answer, the seam the tests drive with fake answers). A blocking child
// communicator split off after init would spare the polling, but its first collective would
// connect to the peers inside NCCL with no deadline at all.
//
// A settled collective is enqueued, not finished: it runs on the CUDA stream, and a watchdog
// thread checks that each one finishes within the timeout, aborting the communicator (and
// ending the job with a line naming the rank) instead of letting it hang.
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/Communicator.h"
#include "comm/MpiCommunicator.h"

namespace ddp {

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> bootstrap, double timeout_s);
  ~NcclCommunicator() override;

  int rank() const override { return bootstrap_->rank(); }
  int size() const override { return bootstrap_->size(); }
  int local_rank() const override { return bootstrap_->local_rank(); }
  std::string backend_name() const override { return "nccl"; }
  torch::Device device() const override { return torch::Device(torch::kCUDA, cuda_device_); }

  void allreduce(torch::Tensor& tensor, ReduceOp op) override;
  void allreduce(std::vector<torch::Tensor>& tensors, ReduceOp op) override;
  void broadcast(torch::Tensor& tensor, int root) override;
  void barrier() override;
  std::vector<std::string> allgather(const std::string& value) override;
  bool any(bool flag) override;
  // The control messages go over MPI and take both; the watchdog takes the timeout.
  void set_timeout(double seconds) override;
  void set_step(int64_t step) override { bootstrap_->set_step(step); }

  // The same collectives on raw device pointers, for code without a CUDA LibTorch.
  void allreduce(void* data, size_t count, ncclDataType_t type, ReduceOp op);
  void broadcast(void* data, size_t count, ncclDataType_t type, int root);
  // Blocks until every enqueued collective finished (or the timeout ended the job).
  void synchronize();

  // One NCCL call's `answer`, settled: returns once the call has completed. ncclInProgress is
  // polled through `async_error` (ncclCommGetAsyncError) until it changes, at most `timeout_s`;
  // an error throws a runtime_error naming `what` and `rank`; a call still in progress at the
  // deadline calls `expire` with the line to print, which must not return (it aborts).
  static void settle_answer(ncclResult_t answer, const std::function<ncclResult_t()>& async_error, double timeout_s,
                            const std::string& what, int rank, const std::function<void(const std::string&)>& expire);

 private:
  struct Pending {
    cudaEvent_t done;
    std::chrono::steady_clock::time_point started;
    const char* what;
  };
  void settle(ncclResult_t answer, const char* what);
  void track(const char* what);
  void watchdog();
  [[noreturn]] void fail(const std::string& why);

  std::unique_ptr<MpiCommunicator> bootstrap_;
  int cuda_device_ = 0;
  ncclComm_t comm_ = nullptr;
  // PyTorch's default stream is the legacy NULL stream, so work on it is ordered with
  // the forward/backward kernels without extra events.
  cudaStream_t stream_ = nullptr;
  std::chrono::duration<double> timeout_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  // Events of finished collectives, recorded again for later ones: creating and destroying
  // one per step would cost microseconds of a step that takes tens.
  std::vector<cudaEvent_t> free_events_;
  std::atomic<bool> stop_{false};
  std::thread watchdog_;
};

}  // namespace ddp
