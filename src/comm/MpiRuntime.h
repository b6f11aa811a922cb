#pragma once
// Owns MPI_Init/MPI_Finalize for the process, and makes communicators. Kept apart from
// Communicator so that the code that trains never sees MPI.
#include <memory>

#include "comm/Communicator.h"
#include "config/Config.h"

namespace ddp {

class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int world_rank() const;
  // Ends every rank of the job: for a failure that the other ranks cannot see. This
  // process ends within kAbortGraceS even if the launcher never comes to kill it.
  [[noreturn]] static void abort_job(int exit_code);
  static constexpr int kAbortGraceS = 10;
};

// MPI over all ranks of the job; each collective waits at most timeout_s for the others.
std::unique_ptr<Communicator> make_mpi_world_communicator(double timeout_s = kDefaultCommTimeoutS);
// MPI over this process alone: a world of one, for references inside a multi-rank test.
std::unique_ptr<Communicator> make_mpi_self_communicator();
// The backend the config asks for on `device` (auto: NCCL for CUDA, MPI for CPU).
std::unique_ptr<Communicator> make_communicator(Backend backend, torch::Device device, double timeout_s);

}  // namespace ddp
