#include "comm/MpiCommunicator.h"

#include <stdexcept>

#include "comm/MpiCheck.h"
#include "common/Float16.h"

namespace ddp {
namespace {

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kUInt8: return MPI_UINT8_T;
    // MPI has no 16-bit float type (Open MPI 4): the bytes travel as 16-bit words, and the
    // sum is a user-defined operation (half_sum_op) that knows what they are.
    case torch::kFloat16:
    case torch::kBFloat16: return MPI_UINT16_T;
    default: throw std::invalid_argument(std::string("MpiCommunicator: unsupported dtype ") +
                                         std::string(c10::toString(t.scalar_type())));
  }
}

// inout += in for `length` elements of a 16-bit float type, in that type's precision (each
// sum rounded to it, as NCCL's half and bfloat16 sums): what a rank receives from a peer.
// float16 by F16C (common/Float16.h: LibTorch's CPU float16 add is 30x slower).
template <c10::ScalarType type>
void sum_16bit(void* in, void* inout, int* length, MPI_Datatype*) {
  if constexpr (type == torch::kFloat16) {
    add_half(static_cast<const uint16_t*>(in), static_cast<uint16_t*>(inout), *length);
  } else {
    torch::Tensor into = torch::from_blob(inout, {*length}, type);
    into.add_(torch::from_blob(in, {*length}, type));
  }
}

// The summing operation of a 16-bit float type, created once per process after MPI_Init.
MPI_Op half_sum_op(torch::ScalarType type) {
  static const MPI_Op float16 = [] {
    MPI_Op op;
    MPI_Op_create(&sum_16bit<torch::kFloat16>, /*commute=*/1, &op);
    return op;
  }();
  static const MPI_Op bfloat16 = [] {
    MPI_Op op;
    MPI_Op_create(&sum_16bit<torch::kBFloat16>, /*commute=*/1, &op);
    return op;
  }();
  return type == torch::kFloat16 ? float16 : bfloat16;
}

MPI_Op mpi_op(ReduceOp op, const torch::Tensor& t) {
  const bool half = t.scalar_type() == torch::kFloat16 || t.scalar_type() == torch::kBFloat16;
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Average: return half ? half_sum_op(t.scalar_type()) : MPI_SUM;  // averaged after the sum
    case ReduceOp::Max:
    case ReduceOp::Min:
      if (half) throw std::invalid_argument("MpiCommunicator::allreduce: Max and Min on 16-bit floats");
      return op == ReduceOp::Max ? MPI_MAX : MPI_MIN;
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
  std::vector<torch::Tensor> one{tensor};
  allreduce(one, op);
}

void MpiCommunicator::allreduce(std::vector<torch::Tensor>& tensors, ReduceOp op) {
  for (const auto& tensor : tensors) {
    require_cpu_contiguous(tensor, "allreduce");
    if (op == ReduceOp::Average && !tensor.is_floating_point())
      throw std::invalid_argument("MpiCommunicator::allreduce: Average needs a floating-point tensor");
  }
  if (size_ == 1 || tensors.empty()) return;  // nothing to combine; skips even the in-place copy
  // Every type and operation is checked before the first is posted: none may be left in flight.
  std::vector<std::pair<MPI_Datatype, MPI_Op>> kinds;
  for (const auto& tensor : tensors) kinds.emplace_back(mpi_type(tensor), mpi_op(op, tensor));
  std::vector<MPI_Request> requests(tensors.size(), MPI_REQUEST_NULL);
  for (size_t k = 0; k < tensors.size(); ++k)
    DDP_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, tensors[k].data_ptr(), int(tensors[k].numel()), kinds[k].first,
                                 kinds[k].second, comm_, &requests[k]));
  deadline_.wait_all(requests.data(), int(requests.size()), "allreduce");
  if (op == ReduceOp::Average)
    for (auto& tensor : tensors) tensor.div_(size_);
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
