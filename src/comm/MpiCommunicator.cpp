#include "comm/MpiCommunicator.h"

#include <stdexcept>

#include "comm/MpiCheck.h"

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

MpiCommunicator::MpiCommunicator(MPI_Comm comm, DeadlineOptions deadline)
    : deadline_(comm, std::move(deadline)), comm_(deadline_.comm()) {
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
  MPI_Request request;
  DDP_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, tensor.data_ptr(), int(tensor.numel()), mpi_type(tensor), mpi_op(op),
                               comm_, &request));
  deadline_.wait(request, "allreduce");
  if (op == ReduceOp::Average) tensor.div_(size_);
}

void MpiCommunicator::broadcast(torch::Tensor& tensor, int root) {
  require_cpu_contiguous(tensor, "broadcast");
  if (size_ == 1) return;
  MPI_Request request;
  DDP_MPI_CHECK(MPI_Ibcast(tensor.data_ptr(), int(tensor.numel()), mpi_type(tensor), root, comm_, &request));
  deadline_.wait(request, "broadcast");
}

void MpiCommunicator::broadcast_bytes(void* data, size_t bytes, int root) {
  MPI_Request request;
  DDP_MPI_CHECK(MPI_Ibcast(data, int(bytes), MPI_BYTE, root, comm_, &request));
  deadline_.wait(request, "broadcast");
}

void MpiCommunicator::barrier() {
  MPI_Request request;
  DDP_MPI_CHECK(MPI_Ibarrier(comm_, &request));
  deadline_.wait(request, "barrier");
}

std::vector<std::string> MpiCommunicator::allgather(const std::string& value) {
  const int length = int(value.size());
  std::vector<int> lengths(size_);
  MPI_Request request;
  DDP_MPI_CHECK(MPI_Iallgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_, &request));
  deadline_.wait(request, "allgather");
  std::vector<int> offsets(size_, 0);
  for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
  std::string all(size_t(offsets.back() + lengths.back()), '\0');
  DDP_MPI_CHECK(MPI_Iallgatherv(value.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
                                comm_, &request));
  deadline_.wait(request, "allgatherv");
  std::vector<std::string> values(size_);
  for (int r = 0; r < size_; ++r) values[r] = all.substr(size_t(offsets[r]), size_t(lengths[r]));
  return values;
}

bool MpiCommunicator::any(bool flag) {
  int local = flag ? 1 : 0;
  int global = 0;
  MPI_Request request;
  DDP_MPI_CHECK(MPI_Iallreduce(&local, &global, 1, MPI_INT, MPI_LOR, comm_, &request));
  deadline_.wait(request, "allreduce (any)");
  return global != 0;
}

}  // namespace ddp
