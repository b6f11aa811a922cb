#pragma once
// Two kinds of failure, because they get different exit codes: a user can fix an
// InputError (config, data file, argument: exit 2); anything else is ours (exit 1), a full
// disk included: not a mistake in the input, and the same command succeeds once there is room.
// exit_code_of and message_of are the one mapping from an exception to what a user sees.
#include <exception>
#include <stdexcept>
#include <string>

namespace ddp {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;
// Stopped before the end (a preemption signal, train.stop_after_steps) with a checkpoint
// to resume from: EX_TEMPFAIL, "try again", which the Slurm script requeues on.
constexpr int kExitStopped = 75;

// kExitBadInput for an InputError, kExitFailure for anything else.
int exit_code_of(const std::exception& error);
int exit_code_of(const std::exception_ptr& error);

// The message without LibTorch's C++ backtrace, which means nothing to a user; for a full
// disk (a std::system_error with ENOSPC or EDQUOT, as common/Files.h throws) followed by what
// to do about it.
std::string message_of(const std::exception& error);
std::string message_of(const std::exception_ptr& error);

// Whether `error` is a write refused for want of space (ENOSPC) or quota (EDQUOT).
bool is_disk_full(const std::exception& error);

}  // namespace ddp
