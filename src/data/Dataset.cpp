#include "data/Dataset.h"

#include <filesystem>

#include "common/Errors.h"
#include "data/Idx.h"

namespace ddp {
namespace {

std::string find_file(const std::string& dir, const std::string& stem) {
  namespace fs = std::filesystem;
  for (const std::string& candidate : {stem, stem + ".gz"}) {
    const fs::path path = fs::path(dir) / candidate;
    if (fs::exists(path)) return path.string();
  }
  throw InputError(dir + ": missing " + stem + "[.gz] (set data.dir to the directory with the four IDX files; "
                   "launch/prepare-data makes the default ones)");
}

Split load_split(const std::string& name, const std::string& dir, const std::string& prefix, bool normalize) {
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  torch::Tensor images = read_idx_images(images_path);
  torch::Tensor labels = read_idx_labels(labels_path);
  if (images.size(0) != labels.size(0))
    throw InputError(images_path + ": holds " + std::to_string(images.size(0)) + " images but " + labels_path +
                     " holds " + std::to_string(labels.size(0)) + " labels");
  torch::Tensor pixels = images.reshape({images.size(0), 28 * 28}).to(torch::kFloat32).div_(255.0);
  if (normalize) {
    const PixelStats stats = pixel_stats(name);
    pixels.sub_(stats.mean).div_(stats.std);
  }
  return {pixels, labels.to(torch::kInt64)};
}

}  // namespace

PixelStats pixel_stats(const std::string& name) {
  if (name == "fashion-mnist") return {0.2860, 0.3530};
  return {0.1307, 0.3081};
}

Dataset load_dataset(const std::string& name, const std::string& dir, bool normalize) {
  // Otherwise a file given as data.dir reads as a directory with all four IDX files missing.
  std::error_code error;
  if (std::filesystem::exists(dir, error) && !std::filesystem::is_directory(dir, error))
    throw InputError(dir + ": data.dir is a file, not a directory; set it to the directory with the four IDX files");
  return {name, load_split(name, dir, "train", normalize), load_split(name, dir, "t10k", normalize)};
}

}  // namespace ddp
