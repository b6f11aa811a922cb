#include "comm/AwaitCompletion.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace ddp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPollsBeforeNaps = 256;
constexpr auto kFirstNap = std::chrono::microseconds(20);
constexpr auto kLongestNap = std::chrono::milliseconds(1);

}  // namespace

AwaitResult await_completion(const std::function<OperationState()>& poll, double timeout_s) {
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  AwaitResult result;
  Clock::duration nap = kFirstNap;
  for (;;) {
    const OperationState state = poll();
    ++result.polls;
    if (state != OperationState::InProgress) {
      result.outcome = state == OperationState::Done ? AwaitOutcome::Done : AwaitOutcome::Failed;
      break;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      result.outcome = AwaitOutcome::Expired;
      break;
    }
    if (result.polls > kPollsBeforeNaps) {
      std::this_thread::sleep_for(std::min<Clock::duration>(nap, deadline - now));
      nap = std::min<Clock::duration>(nap * 2, kLongestNap);
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace ddp
