// GoogleTest main for tests run under `mpiexec -n N`: MPI is initialised once, every
// rank runs every test, and only rank 0 prints (a failure on any rank still fails the
// job, because that rank exits non-zero).
#include <gtest/gtest.h>

#include "comm/MpiRuntime.h"

int main(int argc, char** argv) {
  ddp::MpiRuntime mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.world_rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  if (failed) std::fprintf(stderr, "rank %d: tests failed\n", mpi.world_rank());
  return failed;
}
