#include "comm/MpiCommunicator.h"

#include <stdexcept>

#include "comm/MpiRuntime.h"

// Every MPI call is checked; errors are returned (MPI_ERRORS_RETURN), not fatal, so
// they become exceptions that say which rank and call failed.
#define DDP_MPI_CHECK(call)                                                                               \
  do {                                                                                                    \
    const int ddp_mpi_rc = (call);                                                                        \
    if (ddp_mpi_rc != MPI_SUCCESS) {                                                                      \
      char ddp_mpi_msg[MPI_MAX_ERROR_STRING];                                                             \
      int ddp_mpi_len = 0;                                                                                \
      MPI_Error_string(ddp_mpi_rc, ddp_mpi_msg, &ddp_mpi_len);                                            \
      throw std::runtime_error(std::string("rank ") + std::to_string(rank_) + ": " #call " failed at " + \
                               __FILE__ + ":" + std::to_string(__LINE__) + ": " +                          \
                               std::string(ddp_mpi_msg, ddp_mpi_len));                                     \
    }                                                                                                     \
  } while (0)

namespace ddp {
namespace {

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kUInt8: return MPI_UINT8_T;
    default: throw std::invalid_argument(std::string("MpiCommunicator: unsupported dtype ") +
                                         std::string(c10::toString(t.scalar_type())));
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Average: return MPI_SUM;  // averaged after the sum
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

void require_cpu_contiguous(const torch::Tensor& t, const char* what) {
  if (!t.device().is_cpu() || !t.is_contiguous())
    throw std::invalid_argument(std::string("MpiCommunicator::") + what + ": need a contiguous CPU tensor");
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  DDP_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  DDP_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  DDP_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  // Processes sharing memory are on one node: their rank among themselves picks the GPU.
  // This works under mpirun, srun and any launcher, unlike launcher-specific variables.
  MPI_Comm node;
  DDP_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  DDP_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  DDP_MPI_CHECK(MPI_Comm_free(&node));
}

void MpiCommunicator::allreduce(torch::Tensor& tensor, ReduceOp op) {
  require_cpu_contiguous(tensor, "allreduce");
  if (op == ReduceOp::Average && !tensor.is_floating_point())
    throw std::invalid_argument("MpiCommunicator::allreduce: Average needs a floating-point tensor");
  if (size_ == 1) return;  // nothing to combine; skips even the in-place copy
  DDP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, tensor.data_ptr(), int(tensor.numel()), mpi_type(tensor), mpi_op(op),
                              comm_));
  if (op == ReduceOp::Average) tensor.div_(size_);
}

void MpiCommunicator::broadcast(torch::Tensor& tensor, int root) {
  require_cpu_contiguous(tensor, "broadcast");
  if (size_ == 1) return;
  DDP_MPI_CHECK(MPI_Bcast(tensor.data_ptr(), int(tensor.numel()), mpi_type(tensor), root, comm_));
}

void MpiCommunicator::broadcast_bytes(void* data, size_t bytes, int root) {
  DDP_MPI_CHECK(MPI_Bcast(data, int(bytes), MPI_BYTE, root, comm_));
}

void MpiCommunicator::barrier() { DDP_MPI_CHECK(MPI_Barrier(comm_)); }

std::vector<std::string> MpiCommunicator::allgather(const std::string& value) {
  const int length = int(value.size());
  std::vector<int> lengths(size_);
  DDP_MPI_CHECK(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_));
  std::vector<int> offsets(size_, 0);
  for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
  std::string all(size_t(offsets.back() + lengths.back()), '\0');
  DDP_MPI_CHECK(MPI_Allgatherv(value.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
                               comm_));
  std::vector<std::string> values(size_);
  for (int r = 0; r < size_; ++r) values[r] = all.substr(size_t(offsets[r]), size_t(lengths[r]));
  return values;
}

bool MpiCommunicator::any(bool flag) {
  int local = flag ? 1 : 0;
  int global = 0;
  DDP_MPI_CHECK(MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_LOR, comm_));
  return global != 0;
}

}  // namespace ddp
