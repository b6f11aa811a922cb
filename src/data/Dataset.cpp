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
  PixelScale scale;
  if (normalize) scale.standardize = pixel_stats(name);
  return {images.reshape({images.size(0), 28 * 28}), labels.to(torch::kInt64), scale};
}

}  // namespace

torch::Tensor PixelScale::operator()(const torch::Tensor& pixels) const {
  torch::Tensor x = pixels.to(torch::kFloat32).div_(255.0);
  if (standardize) x.sub_(standardize->mean).div_(standardize->std);
  return x;
}

torch::Tensor PixelScale::table() const { return (*this)(torch::arange(256, torch::kUInt8)); }

Split Split::to(torch::Device device) const {
  Split moved{images.to(device), labels.to(device), scale};
  if (scale && !device.is_cpu()) moved.pixel_values = scale->table().to(device);
  return moved;
}

Split Split::rows(const torch::Tensor& indices) const {
  return {inputs(images.index_select(0, indices)), labels.index_select(0, indices)};
}

Split Split::range(int64_t begin, int64_t count) const {
  return {inputs(images.narrow(0, begin, count)), labels.narrow(0, begin, count)};
}

torch::Tensor Split::inputs(const torch::Tensor& images_rows) const {
  if (!scale) return images_rows;
  // Off the CPU a gather of the values the CPU computed, bit for bit: CUDA divides by a scalar
  // as a multiplication by its reciprocal, which can differ in the last bit.
  if (pixel_values.defined())
    return pixel_values.index_select(0, images_rows.flatten().to(torch::kInt64)).view(images_rows.sizes());
  // On the CPU the operations themselves: they cost about what gathering float32 rows did.
  return (*scale)(images_rows);
}

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
