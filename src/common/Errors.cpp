#include "common/Errors.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <system_error>

namespace ddp {

int exit_code_of(const std::exception& error) {
  return dynamic_cast<const InputError*>(&error) ? kExitBadInput : kExitFailure;
}

int exit_code_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return exit_code_of(e);
  } catch (...) {
    return kExitFailure;
  }
}

bool is_disk_full(const std::exception& error) {
  const auto* system_error = dynamic_cast<const std::system_error*>(&error);
  if (!system_error) return false;
  // generic_category (common/Files.h, std::filesystem) or system_category: both map errno here.
  const std::error_condition reason = system_error->code().default_error_condition();
  return reason.category() == std::generic_category() && (reason.value() == ENOSPC || reason.value() == EDQUOT);
}

std::string message_of(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) return torch_error->what_without_backtrace();
  // A checkpoint is written before the oldest beyond checkpoint.keep is removed, so a run
  // needs room for keep + 1 of them; those already written are intact.
  if (is_disk_full(error))
    return std::string(error.what()) +
           "; the disk is full: free space on it, keep fewer checkpoints (checkpoint.keep) or write them to another "
           "filesystem (checkpoint.dir), then continue from the newest checkpoint with --resume";
  return error.what();
}

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return message_of(e);
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace ddp
