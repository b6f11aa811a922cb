// The waiting behind every call on a non-blocking NCCL communicator (comm/AwaitCompletion.h),
// driven by fake answers: it must return as soon as the operation is done, report a failure, and
// give up at the deadline instead of spinning for good. The NCCL side of the seam
// (NcclCommunicator::settle_answer) is driven the same way in tests/comm/NcclSettleTest.cpp.
#include "comm/AwaitCompletion.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace ddp {
namespace {

// Answers InProgress `busy` times, then `last`, then fails the test if asked again.
struct FakeOperation {
  int busy;
  OperationState last;
  int asked = 0;
  OperationState operator()() {
    ++asked;
    EXPECT_LE(asked, busy + 1) << "polled after it answered " << (last == OperationState::Done ? "Done" : "Failed");
    return asked <= busy ? OperationState::InProgress : last;
  }
};

TEST(AwaitCompletion, ReturnsWhenTheOperationIsDone) {
  for (int busy : {0, 1, 5, 1000}) {
    FakeOperation op{busy, OperationState::Done};
    const AwaitResult result = await_completion(std::ref(op), 10.0);
    EXPECT_EQ(result.outcome, AwaitOutcome::Done);
    EXPECT_EQ(result.polls, busy + 1);
    EXPECT_LT(result.seconds, 5.0);
  }
}

TEST(AwaitCompletion, ReportsAFailureAfterSomePolls) {
  FakeOperation op{3, OperationState::Failed};
  const AwaitResult result = await_completion(std::ref(op), 10.0);
  EXPECT_EQ(result.outcome, AwaitOutcome::Failed);
  EXPECT_EQ(result.polls, 4);
}

TEST(AwaitCompletion, GivesUpAtTheDeadlineWithoutSpinning) {
  int polls = 0;
  const auto start = std::chrono::steady_clock::now();
  const AwaitResult result = await_completion(
      [&] {
        ++polls;
        return OperationState::InProgress;
      },
      0.3);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(result.outcome, AwaitOutcome::Expired);
  EXPECT_GE(seconds, 0.3);
  EXPECT_LT(seconds, 1.5);
  // Naps of up to 1 ms after the first polls: hundreds of polls, not millions.
  EXPECT_LT(polls, 5000) << "it spun instead of napping";
}

}  // namespace
}  // namespace ddp
