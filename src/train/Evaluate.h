#pragma once
#include <torch/torch.h>

#include "comm/Communicator.h"
#include "data/Dataset.h"
#include "model/Model.h"

namespace ddp {

struct Evaluation {
  double loss = 0;      // mean cross-entropy over the whole split
  double accuracy = 0;  // fraction correct over the whole split
  int64_t samples = 0;
};

// Each rank scores a contiguous slice of `split` (no padding, so no sample counts
// twice); sums of loss and correct answers are all-reduced, so every rank returns the
// result over the full split. The model runs in eval mode (a BN uses its running
// statistics, which must agree on every rank: Replica::sync_buffers).
Evaluation evaluate(Model& model, const Split& split, Communicator& comm);

}  // namespace ddp
