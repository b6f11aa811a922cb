#include "comm/Backend.h"

#include "comm/MpiCommunicator.h"
#include "comm/MpiRuntime.h"
#include "common/Errors.h"
#ifdef DDP_HAVE_NCCL
#include "comm/NcclCommunicator.h"
#endif

namespace ddp {

std::unique_ptr<Communicator> make_communicator(Backend backend, torch::Device device, double timeout_s) {
  const bool want_nccl = backend == Backend::Nccl || (backend == Backend::Auto && device.is_cuda());
  if (!want_nccl) {
    if (device.is_cuda())
      throw InputError("comm.backend: mpi needs CPU tensors but the model is on CUDA; use comm.backend=nccl or auto");
    return make_mpi_world_communicator(timeout_s);
  }
  if (!device.is_cuda()) throw InputError("comm.backend: nccl needs the model on CUDA (device=cuda)");
#ifdef DDP_HAVE_NCCL
  DeadlineOptions deadline;
  deadline.timeout_s = timeout_s;
  return std::make_unique<NcclCommunicator>(std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, deadline),
                                            timeout_s);
#else
  throw InputError("comm.backend: nccl, but this build has no NCCL backend (configure with -DDDP_WITH_NCCL=ON)");
#endif
}

}  // namespace ddp
