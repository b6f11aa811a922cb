#pragma once
// A dataset split held as two tensors, so a batch is one index_select, not a collation
// of samples. Images are float [N, 784], already scaled (and optionally standardised);
// labels are int64 [N].
#include <torch/torch.h>

#include <string>

namespace ddp {

struct Split {
  torch::Tensor images;
  torch::Tensor labels;
  int64_t size() const { return labels.size(0); }
  Split to(torch::Device device) const { return {images.to(device), labels.to(device)}; }
  // The samples at `indices` (on the split's device): a batch.
  Split rows(const torch::Tensor& indices) const {
    return {images.index_select(0, indices), labels.index_select(0, indices)};
  }
};

struct Dataset {
  std::string name;
  Split train;
  Split test;
};

// Standard file names inside `dir`: train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or with `.gz`.
Dataset load_dataset(const std::string& name, const std::string& dir, bool normalize);

// Pixel statistics used to standardise each dataset (the values torchvision examples use).
struct PixelStats {
  double mean;
  double std;
};
PixelStats pixel_stats(const std::string& name);

}  // namespace ddp
