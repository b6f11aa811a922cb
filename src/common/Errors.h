#pragma once
// Two kinds of failure, because they get different exit codes: a user can fix an
// InputError (config, data file, argument: exit 2); anything else is ours (exit 1).
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

}  // namespace ddp
