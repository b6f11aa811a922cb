#include "comm/NcclCommunicator.h"

#include <cstdio>
#include <stdexcept>

#include "comm/AwaitCompletion.h"


#define DDP_CUDA_CHECK(call)                                                                             \
  do {                                                                                                   \
    const cudaError_t ddp_cuda_rc = (call);                                                              \
    if (ddp_cuda_rc != cudaSuccess)                                                                      \
      throw std::runtime_error("rank " + std::to_string(rank()) + ": " #call " failed at " + __FILE__ + \
                               ":" + std::to_string(__LINE__) + ": " + cudaGetErrorString(ddp_cuda_rc)); \
  } while (0)

// For the calls that do not touch the communicator (ncclGetUniqueId): blocking by nature.
#define DDP_NCCL_CHECK(call)                                                                             \
  do {                                                                                                   \
    const ncclResult_t ddp_nccl_rc = (call);                                                             \
    if (ddp_nccl_rc != ncclSuccess)                                                                      \
      throw std::runtime_error("rank " + std::to_string(rank()) + ": " #call " failed at " + __FILE__ + \
                               ":" + std::to_string(__LINE__) + ": " + ncclGetErrorString(ddp_nccl_rc)); \
  } while (0)

namespace ddp {
namespace {

ncclDataType_t nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kFloat16: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kInt32: return ncclInt32;
    case torch::kInt64: return ncclInt64;
    case torch::kUInt8: return ncclUint8;
    default: throw std::invalid_argument("NcclCommunicator: unsupported dtype");
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Average: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  return ncclSum;
}

void require_cuda_contiguous(const torch::Tensor& t, const char* what) {
  if (!t.device().is_cuda() || !t.is_contiguous())
    throw std::invalid_argument(std::string("NcclCommunicator::") + what + ": need a contiguous CUDA tensor");
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<MpiCommunicator> bootstrap, double timeout_s)
    : bootstrap_(std::move(bootstrap)), timeout_(timeout_s) {
  // Device selection and the unique id can fail on some ranks only; agree before the
  // broadcast, or the others would wait in it for good.
  ncclUniqueId id{};
  std::string local_error;
  try {
    int devices = 0;
    DDP_CUDA_CHECK(cudaGetDeviceCount(&devices));
    if (devices == 0) throw std::runtime_error("rank " + std::to_string(rank()) + ": NCCL backend but no CUDA device");
    // One rank per GPU: the node-local rank picks it.
    cuda_device_ = local_rank() % devices;
    DDP_CUDA_CHECK(cudaSetDevice(cuda_device_));
    if (rank() == 0) DDP_NCCL_CHECK(ncclGetUniqueId(&id));
  } catch (const std::exception& e) {
    local_error = e.what();
  }
  if (bootstrap_->any(!local_error.empty()))
    throw std::runtime_error(local_error.empty() ? "another rank failed to set up NCCL" : local_error);
  bootstrap_->broadcast_bytes(&id, sizeof(id), 0);

  // Non-blocking initialisation, polled against the timeout: a rank that never joins
  // must not leave the others inside ncclCommInitRank for good.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t answer = ncclCommInitRankConfig(&comm_, size(), id, rank(), &config);
  ncclResult_t state = answer;
  if (answer == ncclInProgress) {
    const AwaitResult waited = await_completion(
        [&] {
          ncclCommGetAsyncError(comm_, &state);
          return state == ncclInProgress ? OperationState::InProgress
                 : state == ncclSuccess  ? OperationState::Done
                                         : OperationState::Failed;
        },
        timeout_.count());
    if (waited.outcome == AwaitOutcome::Expired) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
      throw std::runtime_error("rank " + std::to_string(rank()) + ": ncclCommInitRank did not finish within " +
                               std::to_string(timeout_.count()) + " s (comm.timeout_s)");
    }
  }
  if (state != ncclSuccess) {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    throw std::runtime_error("rank " + std::to_string(rank()) + ": ncclCommInitRank failed: " +
                             ncclGetErrorString(state));
  }
  watchdog_ = std::thread([this] { watchdog(); });
}

void NcclCommunicator::settle_answer(ncclResult_t answer, const std::function<ncclResult_t()>& async_error,
                                     double timeout_s, const std::string& what, int rank,
                                     const std::function<void(const std::string&)>& expire) {
  const auto failed = [&](ncclResult_t code) {
    return std::runtime_error("rank " + std::to_string(rank) + ": " + what + " failed: " + ncclGetErrorString(code));
  };
  if (answer == ncclSuccess) return;
  if (answer != ncclInProgress) throw failed(answer);
  ncclResult_t state = ncclInProgress;
  const AwaitResult waited = await_completion(
      [&] {
        state = async_error();
        return state == ncclInProgress ? OperationState::InProgress
               : state == ncclSuccess  ? OperationState::Done
                                       : OperationState::Failed;
      },
      timeout_s);
  switch (waited.outcome) {
    case AwaitOutcome::Done: return;
    case AwaitOutcome::Failed: throw failed(state);
    case AwaitOutcome::Expired:
      expire(what + " was still in progress (ncclInProgress) after " + std::to_string(timeout_s) +
             " s (comm.timeout_s); a peer rank is probably dead or stuck");
      throw std::logic_error("settle_answer: expire returned");  // not reached: expire ends the job
  }
}

void NcclCommunicator::settle(ncclResult_t answer, const char* what) {
  settle_answer(
      answer,
      [this] {
        ncclResult_t state = ncclSuccess;
        const ncclResult_t queried = ncclCommGetAsyncError(comm_, &state);
        return queried == ncclSuccess ? state : queried;
      },
      timeout_.count(), what, rank(), [this](const std::string& why) { fail(why); });
}

NcclCommunicator::~NcclCommunicator() {
  stop_ = true;
  wake_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  for (auto& p : pending_) cudaEventDestroy(p.done);
  for (auto event : free_events_) cudaEventDestroy(event);
  if (!comm_) return;
  // A non-blocking communicator finishes its outstanding work in ncclCommFinalize, which may
  // answer ncclInProgress: settled like any call, and aborted instead if it cannot finish.
  try {
    settle(ncclCommFinalize(comm_), "ncclCommFinalize");
    ncclCommDestroy(comm_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ddp-train: rank %d: %s; aborting the NCCL communicator\n", rank(), e.what());
    ncclCommAbort(comm_);
  }
}

void NcclCommunicator::track(const char* what) {
  // The watchdog is not woken: it polls every few milliseconds, far inside any timeout,
  // and waking it on every step would cost a thread switch per step.
  std::lock_guard<std::mutex> lock(mutex_);
  cudaEvent_t done = nullptr;
  if (!free_events_.empty()) {
    done = free_events_.back();
    free_events_.pop_back();
  } else {
    DDP_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  }
  DDP_CUDA_CHECK(cudaEventRecord(done, stream_));
  pending_.push_back({done, std::chrono::steady_clock::now(), what});
}

void NcclCommunicator::fail(const std::string& why) {
  std::fprintf(stderr, "ddp-train: rank %d: %s; aborting the NCCL communicator and the job\n", rank(), why.c_str());
  std::fflush(stderr);
  ncclCommAbort(comm_);
  // The other ranks are stuck in the same collective: only ending the job frees them. This
  // runs on the watchdog thread, which must not call MPI (FUNNELED); a rank that exits
  // without MPI_Finalize makes mpirun and srun (--kill-on-bad-exit) end every other rank.
  std::_Exit(1);
}

void NcclCommunicator::watchdog() {
  if (cudaSetDevice(cuda_device_) != cudaSuccess) fail("watchdog cannot select its CUDA device");
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(10));
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress)
      fail(std::string("NCCL asynchronous error: ") + ncclGetErrorString(async));
    while (!pending_.empty()) {
      Pending& oldest = pending_.front();
      const cudaError_t state = cudaEventQuery(oldest.done);
      if (state == cudaSuccess) {
        free_events_.push_back(oldest.done);
        pending_.pop_front();
        continue;
      }
      if (state != cudaErrorNotReady) fail(std::string("CUDA error in ") + oldest.what + ": " + cudaGetErrorString(state));
      if (std::chrono::steady_clock::now() - oldest.started > timeout_)
        fail(std::string(oldest.what) + " did not complete within " + std::to_string(timeout_.count()) +
             " s (comm.timeout_s); a peer rank is probably dead or stuck");
      break;
    }
  }
}

void NcclCommunicator::allreduce(void* data, size_t count, ncclDataType_t type, ReduceOp op) {
  settle(ncclAllReduce(data, data, count, type, nccl_op(op), comm_, stream_), "ncclAllReduce");
  track("ncclAllReduce");
}

void NcclCommunicator::broadcast(void* data, size_t count, ncclDataType_t type, int root) {
  settle(ncclBroadcast(data, data, count, type, root, comm_, stream_), "ncclBroadcast");
  track("ncclBroadcast");
}

void NcclCommunicator::allreduce(torch::Tensor& tensor, ReduceOp op) {
  require_cuda_contiguous(tensor, "allreduce");
  allreduce(tensor.data_ptr(), size_t(tensor.numel()), nccl_type(tensor), op);
}

void NcclCommunicator::allreduce(std::vector<torch::Tensor>& tensors, ReduceOp op) {
  for (const auto& tensor : tensors) require_cuda_contiguous(tensor, "allreduce");
  // Inside a group NCCL only records each call; the group's end launches them together and is
  // the one answer to settle (a call inside may already answer ncclInProgress: not an error).
  settle(ncclGroupStart(), "ncclGroupStart");
  for (auto& t : tensors) {
    const ncclResult_t answer =
        ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t), nccl_op(op), comm_, stream_);
    if (answer != ncclSuccess && answer != ncclInProgress) {
      ncclGroupEnd();
      settle(answer, "ncclAllReduce (in a group)");
    }
  }
  settle(ncclGroupEnd(), "ncclGroupEnd (allreduce)");
  track("ncclAllReduce (group)");
}

void NcclCommunicator::broadcast(torch::Tensor& tensor, int root) {
  require_cuda_contiguous(tensor, "broadcast");
  broadcast(tensor.data_ptr(), size_t(tensor.numel()), nccl_type(tensor), root);
}

void NcclCommunicator::synchronize() {
  // Cannot hang for good: the watchdog ends the job if a collective outlives the timeout.
  DDP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void NcclCommunicator::barrier() {
  synchronize();
  bootstrap_->barrier();
}

std::vector<std::string> NcclCommunicator::allgather(const std::string& value) { return bootstrap_->allgather(value); }

bool NcclCommunicator::any(bool flag) { return bootstrap_->any(flag); }

void NcclCommunicator::set_timeout(double seconds) {
  bootstrap_->set_timeout(seconds);
  std::lock_guard<std::mutex> lock(mutex_);  // the watchdog reads it
  timeout_ = std::chrono::duration<double>(seconds);
}

}  // namespace ddp
