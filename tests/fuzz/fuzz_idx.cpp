// libFuzzer target: arbitrary bytes as an IDX file, plain or gzip. Every input must end
// in a parse or an InputError: no crash, no sanitizer report, no huge allocation.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/Errors.h"
#include "data/IdxFormat.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 64 MiB of inflated output is plenty for a fuzz input and keeps gzip bombs cheap.
  constexpr size_t kFuzzMaxBytes = size_t(64) << 20;
  try {
    const std::vector<uint8_t> bytes = ddp::inflate_if_gzip(std::vector<uint8_t>(data, data + size), "fuzz", kFuzzMaxBytes);
    try {
      const ddp::IdxArray images = ddp::parse_idx_images(bytes, "fuzz");
      // The promise the reader relies on: the payload is exactly count x 28 x 28 bytes.
      if (bytes.size() - images.data_offset != size_t(images.shape[0]) * 28 * 28) __builtin_trap();
    } catch (const ddp::InputError&) {
    }
    try {
      const ddp::IdxArray labels = ddp::parse_idx_labels(bytes, "fuzz");
      if (bytes.size() - labels.data_offset != labels.shape[0]) __builtin_trap();
      for (size_t i = labels.data_offset; i < bytes.size(); ++i)
        if (bytes[i] > 9) __builtin_trap();
    } catch (const ddp::InputError&) {
    }
  } catch (const ddp::InputError&) {
  }
  return 0;
}
