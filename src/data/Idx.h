#pragma once
// Reader for the IDX format of MNIST-style datasets (LeCun's train-images-idx3-ubyte, ...),
// plain or gzip-compressed, into tensors. Every header field is checked against the
// bytes that are actually there before anything is allocated from it (IdxFormat.h), so
// a hostile or truncated file is an InputError naming the file, never a crash or a huge
// allocation.
#include <torch/torch.h>

#include <string>

namespace ddp {

// uint8 tensor [count, 28, 28]; requires magic 0x00000803.
torch::Tensor read_idx_images(const std::string& path);
// uint8 tensor [count]; requires magic 0x00000801 and every label < num_classes.
torch::Tensor read_idx_labels(const std::string& path, int num_classes = 10);

// The inverse of read_idx_images, for tests.
void write_idx_images(const std::string& path, const torch::Tensor& images_uint8);

}  // namespace ddp
