#pragma once
// Before the first step every rank must run the same experiment: the same config, the
// same binary, the same data and the same model. A mismatch (a stale binary on one
// node, a different data directory) would otherwise train garbage without an error.
#include <string>
#include <utility>
#include <vector>

#include "comm/Communicator.h"

namespace ddp {

using Fingerprint = std::vector<std::pair<std::string, std::string>>;  // field -> value

// Gathers every rank's fingerprint; throws InputError on every rank if any rank's
// differs from rank 0's, naming the rank, the field and both values.
void check_consistency(Communicator& comm, const Fingerprint& mine);

}  // namespace ddp
