#pragma once
// Waiting, with a deadline, for an operation that a library finishes in the background and
// reports by polling: a non-blocking NCCL communicator answers ncclInProgress to every call it
// hands to its own thread, and must be polled (ncclCommGetAsyncError) until the answer
// changes before it may be called again. Kept free of NCCL so that the waiting itself is
// proven on any machine, driven by a fake sequence of states (tests/comm/AwaitCompletionTest).
#include <cstdint>
#include <functional>

namespace ddp {

enum class OperationState { Done, InProgress, Failed };
enum class AwaitOutcome { Done, Failed, Expired };

struct AwaitResult {
  AwaitOutcome outcome = AwaitOutcome::Done;
  int64_t polls = 0;     // calls of `poll`
  double seconds = 0;    // waited
};

// Calls `poll` until it answers Done or Failed, or until `timeout_s` has passed (Expired; the
// caller then aborts). Polls back to back at first, as most operations end within
// microseconds, then between naps that grow to 1 ms, so that a long wait leaves the core alone.
AwaitResult await_completion(const std::function<OperationState()>& poll, double timeout_s);

}  // namespace ddp
