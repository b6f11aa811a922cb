#pragma once
// The IDX format itself, free of LibTorch so the fuzzers can drive it directly: gzip
// detection and inflation in memory, and header checks against the bytes present.
#include <cstdint>
#include <string>
#include <vector>

namespace ddp {

struct IdxArray {
  std::vector<uint32_t> shape;  // e.g. {count, 28, 28}
  size_t data_offset = 0;       // where the payload starts in the (inflated) bytes
};

// The whole file, as stored; a file larger than `max_bytes` is refused before any allocation.
std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes);
// Inflates `raw` if it starts with the gzip magic (1f 8b), else returns it unchanged.
// Refuses corrupt or truncated streams and output beyond `max_bytes` (InputError naming `source`).
std::vector<uint8_t> inflate_if_gzip(std::vector<uint8_t> raw, const std::string& source, size_t max_bytes);

// Validate an image file (magic 0x00000803, 28x28, payload = header's count) or a
// label file (magic 0x00000801, every label < num_classes). InputError names `source`.
IdxArray parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& source);
IdxArray parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& source, int num_classes = 10);

// The largest inflated IDX file accepted: the full MNIST train images are 47 MB; 1 GiB
// (1.3 million 28x28 images) keeps a hostile file from exhausting memory on every rank.
constexpr size_t kMaxIdxBytes = size_t(1) << 30;

}  // namespace ddp
