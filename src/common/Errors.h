#pragma once
// Two kinds of failure, because they get different exit codes: a user can fix an
// InputError (config, data file, argument: exit 2); anything else is ours (exit 1).
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

// The message without LibTorch's C++ backtrace, which means nothing to a user.
std::string message_of(const std::exception& error);
std::string message_of(const std::exception_ptr& error);

}  // namespace ddp
