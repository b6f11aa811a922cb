#pragma once
// NCCL collectives on device memory, bootstrapped over MPI the llm.c way: rank 0 makes
// the ncclUniqueId, MPI broadcasts it, every rank joins with ncclCommInitRank.
// Collectives are enqueued on one CUDA stream and not waited for; a watchdog thread
// checks each one finishes within the timeout and aborts the communicator (ending the
// job with a message naming the rank) instead of letting it hang.
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
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

 private:
  struct Pending {
    cudaEvent_t done;
    std::chrono::steady_clock::time_point started;
    const char* what;
  };
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
