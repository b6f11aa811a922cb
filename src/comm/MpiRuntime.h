#pragma once
// Owns MPI_Init/MPI_Finalize for the process, and makes MPI communicators (comm/Backend.h
// chooses the training backend). Kept apart from Communicator so that the code that
// trains never sees MPI.
#include <memory>

#include "comm/Communicator.h"

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

}  // namespace ddp
