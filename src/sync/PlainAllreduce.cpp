#include "sync/PlainAllreduce.h"

namespace ddp {

int64_t PlainAllreduce::exchange(GradientBuckets& buckets, int64_t) {
  int64_t bytes = 0;
  for (auto& buffer : buckets.buffers()) {
    comm_.allreduce(buffer, ReduceOp::Average);
    bytes += int64_t(buffer.nbytes());
  }
  return bytes;
}

}  // namespace ddp
