#pragma once
// comm.compression=none: every bucket all-reduced in float32, in place. The exact mean.
#include "sync/GradientExchange.h"

namespace ddp {

class PlainAllreduce final : public GradientExchange {
 public:
  explicit PlainAllreduce(Communicator& comm) : comm_(comm) {}
  int64_t exchange(GradientBuckets& buckets, int64_t step) override;
  bool exact(int64_t) const override { return true; }

 private:
  Communicator& comm_;
};

}  // namespace ddp
