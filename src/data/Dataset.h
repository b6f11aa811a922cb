#pragma once
// A dataset split held as two tensors, so a batch is one gather by index, not a collation
// of samples. Images stay uint8 [N, 784] as the files hold them, a quarter of float32's
// memory (Fashion-MNIST's training set: 47 MB, not 188 MB); a batch's pixels become the
// model's float32 inputs as it is drawn. Labels are int64 [N].
#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>

namespace ddp {

// Pixel statistics used to standardise each dataset (the values torchvision examples use).
struct PixelStats {
  double mean;
  double std;
};
PixelStats pixel_stats(const std::string& name);

// How uint8 pixels become model inputs: x / 255 (torchvision's ToTensor), then, with
// `standardize`, (x - mean) / std (its Normalize). Float32 elementwise operations in that
// order, on the CPU, so a pixel value gives the same bits whichever batch it is converted in.
struct PixelScale {
  std::optional<PixelStats> standardize;
  torch::Tensor operator()(const torch::Tensor& pixels) const;  // uint8 on the CPU -> float32
  torch::Tensor table() const;  // float32 [256]: the input of each pixel value 0..255
};

struct Split {
  Split() = default;
  Split(torch::Tensor images, torch::Tensor labels, std::optional<PixelScale> scale = std::nullopt)
      : images(std::move(images)), labels(std::move(labels)), scale(std::move(scale)) {}

  // uint8 [N, 784] pixels that `scale` converts; or, where `scale` is empty, float32 [N, 784]
  // inputs used as they are (synthetic data in tests and benchmarks).
  torch::Tensor images;
  torch::Tensor labels;
  std::optional<PixelScale> scale;
  // Off the CPU only: scale->table() on the split's device; a batch gathers its inputs from it.
  torch::Tensor pixel_values;

  int64_t size() const { return labels.size(0); }
  // The split on `device`, its pixels still uint8.
  Split to(torch::Device device) const;
  // The samples at `indices` (on the split's device) as model inputs: a batch.
  Split rows(const torch::Tensor& indices) const;
  // The samples [begin, begin + count) as model inputs.
  Split range(int64_t begin, int64_t count) const;
  // `images`' rows as model inputs: float32, on the split's device.
  torch::Tensor inputs(const torch::Tensor& images_rows) const;
};

struct Dataset {
  std::string name;
  Split train;
  Split test;
};

// Standard file names inside `dir`: train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or with `.gz`. With
// `normalize`, each split's scale standardises by pixel_stats(name).
Dataset load_dataset(const std::string& name, const std::string& dir, bool normalize);

}  // namespace ddp
