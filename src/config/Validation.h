#pragma once
// The checks that involve more than one key (a single key's type and range are the schema's):
// combinations that cannot mean anything, refused before anything runs, naming every key
// involved and where it was set. The checks that need the world size are set-up's
// (train/Setup.h: check_run_shape).
#include "config/Config.h"
#include "config/Origins.h"

namespace ddp::config {

// Throws InputError for the first combination of keys that is refused.
void validate(const Config& config, const Origins& origins);

}  // namespace ddp::config
