#include "common/Errors.h"

#include <c10/util/Exception.h>

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

std::string message_of(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) return torch_error->what_without_backtrace();
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
