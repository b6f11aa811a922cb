#pragma once
// Reader for the IDX format of MNIST-style datasets (LeCun's train-images-idx3-ubyte, ...),
// plain or gzip-compressed. Every header field is checked against the bytes that are
// actually there before anything is allocated from it, so a hostile or truncated file
// is an InputError naming the file, never a crash or a huge allocation.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ddp {

// Decompressed file contents (gzip detected by its magic bytes, so `.gz` naming is optional).
// Refuses to inflate beyond `max_bytes`.
std::vector<uint8_t> read_maybe_gzip(const std::string& path, size_t max_bytes);

// uint8 tensor [count, rows, cols]; requires magic 0x00000803.
torch::Tensor read_idx_images(const std::string& path);
// uint8 tensor [count]; requires magic 0x00000801 and every label < num_classes.
torch::Tensor read_idx_labels(const std::string& path, int num_classes = 10);

// Writers for the data-preparation command and tests.
void write_idx_images(const std::string& path, const torch::Tensor& images_uint8);
void write_idx_labels(const std::string& path, const torch::Tensor& labels_uint8);

}  // namespace ddp
