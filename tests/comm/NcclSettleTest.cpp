// NcclCommunicator::settle_answer, the seam every call on the non-blocking communicator goes
// through, driven by fake NCCL answers (no GPU needed): ncclInProgress several times and then
// ncclSuccess returns; an error answer, first or after polling, throws naming the call and the
// rank; ncclInProgress past the deadline ends the job through `expire` with the line it prints.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>

#include "comm/NcclCommunicator.h"

namespace ddp {
namespace {

struct Expired : std::runtime_error {
  using std::runtime_error::runtime_error;
};
void expire(const std::string& line) { throw Expired(line); }

TEST(NcclSettle, InProgressSeveralTimesThenSuccessReturns) {
  int polled = 0;
  NcclCommunicator::settle_answer(
      ncclInProgress, [&] { return ++polled < 6 ? ncclInProgress : ncclSuccess; }, 5.0, "ncclAllReduce", 3, expire);
  EXPECT_EQ(polled, 6);
  NcclCommunicator::settle_answer(
      ncclSuccess, [&]() -> ncclResult_t { ADD_FAILURE() << "polled after ncclSuccess"; return ncclSuccess; }, 5.0,
      "ncclAllReduce", 3, expire);
}

TEST(NcclSettle, AnErrorThrowsNamingTheCallAndTheRank) {
  try {
    NcclCommunicator::settle_answer(ncclInvalidArgument, [] { return ncclSuccess; }, 5.0, "ncclBroadcast", 2, expire);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 2: ncclBroadcast failed"), std::string::npos) << e.what();
  }
  int polled = 0;
  EXPECT_THROW(NcclCommunicator::settle_answer(
                   ncclInProgress, [&] { return ++polled < 3 ? ncclInProgress : ncclRemoteError; }, 5.0,
                   "ncclGroupEnd", 0, expire),
               std::runtime_error);
  EXPECT_EQ(polled, 3);
}

TEST(NcclSettle, InProgressPastTheDeadlineEndsTheJobWithItsLine) {
  const auto start = std::chrono::steady_clock::now();
  try {
    NcclCommunicator::settle_answer(ncclInProgress, [] { return ncclInProgress; }, 0.2, "ncclAllReduce", 1, expire);
    ADD_FAILURE() << "expire was not called";
  } catch (const Expired& e) {
    const std::string line = e.what();
    EXPECT_NE(line.find("ncclAllReduce was still in progress (ncclInProgress) after 0.2"), std::string::npos) << line;
    EXPECT_NE(line.find("comm.timeout_s"), std::string::npos) << line;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(seconds, 0.2);
  EXPECT_LT(seconds, 2.0);
}

}  // namespace
}  // namespace ddp
