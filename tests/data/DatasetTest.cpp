// A split keeps its pixels as uint8 and converts each batch as it is drawn. Its inputs must be
// the floats the whole split once became at load, bit for bit, or runs stop being
// reproducible across that change: every batch (Split::rows), every evaluation chunk
// (Split::range), and the gather from the table that devices other than the CPU use.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/Dataset.h"
#include "data/Idx.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;

// What load_dataset did before the pixels stayed uint8: the whole split at once.
torch::Tensor whole_split_as_floats(const std::string& images_path, const std::string& name, bool normalize) {
  const torch::Tensor images = read_idx_images(images_path);
  torch::Tensor pixels = images.reshape({images.size(0), 28 * 28}).to(torch::kFloat32).div_(255.0);
  if (normalize) {
    const PixelStats stats = pixel_stats(name);
    pixels.sub_(stats.mean).div_(stats.std);
  }
  return pixels;
}

class DatasetTest : public ::testing::TestWithParam<std::tuple<std::string, bool>> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ddp_dataset_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    // Every pixel value, at every position modulo the vector widths, in both splits.
    torch::manual_seed(7);
    for (const auto& [prefix, n] : {std::pair<std::string, int64_t>{"train", 1000}, {"t10k", 300}}) {
      write_idx_images(path(prefix + "-images-idx3-ubyte"), torch::randint(256, {n, 28, 28}, torch::kUInt8));
      write_labels(path(prefix + "-labels-idx1-ubyte"), n);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static void write_labels(const std::string& file, int64_t n) {
    std::ofstream out(file, std::ios::binary);
    const char header[8] = {0, 0, 8, 1, char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
    out.write(header, 8);
    for (int64_t i = 0; i < n; ++i) out.put(char(i % 10));
  }

  fs::path dir_;
};

// The batches of one epoch in random order (the last one short) and the evaluation's chunks.
void expect_inputs_equal(const Split& split, const torch::Tensor& reference) {
  ASSERT_EQ(split.images.scalar_type(), torch::kUInt8);
  const torch::Tensor order = torch::randperm(split.size(), torch::kInt64);
  for (int64_t begin = 0; begin < split.size(); begin += 64) {
    const torch::Tensor indices = order.narrow(0, begin, std::min<int64_t>(64, split.size() - begin));
    const Split batch = split.rows(indices);
    ASSERT_EQ(batch.images.scalar_type(), torch::kFloat32);
    ASSERT_TRUE(torch::equal(batch.images, reference.index_select(0, indices))) << "batch at " << begin;
    ASSERT_TRUE(torch::equal(batch.labels, split.labels.index_select(0, indices)));
  }
  for (int64_t begin = 0; begin < split.size(); begin += 256) {
    const int64_t count = std::min<int64_t>(256, split.size() - begin);
    ASSERT_TRUE(torch::equal(split.range(begin, count).images, reference.narrow(0, begin, count))) << begin;
  }
}

TEST_P(DatasetTest, BatchesAreTheWholeSplitConvertedAtOnceBitForBit) {
  const auto& [name, normalize] = GetParam();
  const Dataset data = load_dataset(name, dir_.string(), normalize);
  expect_inputs_equal(data.train, whole_split_as_floats(path("train-images-idx3-ubyte"), name, normalize));
  expect_inputs_equal(data.test, whole_split_as_floats(path("t10k-images-idx3-ubyte"), name, normalize));
}

// Split::to gives a split off the CPU the table to gather from; here on the CPU, the same gather.
TEST_P(DatasetTest, TheTableGathersTheSameBits) {
  const auto& [name, normalize] = GetParam();
  Split train = load_dataset(name, dir_.string(), normalize).train;
  train.pixel_values = train.scale->table();
  expect_inputs_equal(train, whole_split_as_floats(path("train-images-idx3-ubyte"), name, normalize));
}

TEST_P(DatasetTest, OnTheGpuBatchesAreTheCpuOnes) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU visible";
  const auto& [name, normalize] = GetParam();
  const Split train = load_dataset(name, dir_.string(), normalize).train;
  const Split on_gpu = train.to(torch::kCUDA);
  const torch::Tensor indices = torch::randperm(train.size(), torch::kInt64).narrow(0, 0, 64);
  EXPECT_TRUE(torch::equal(on_gpu.rows(indices.cuda()).images.cpu(), train.rows(indices).images));
  EXPECT_TRUE(torch::equal(on_gpu.range(100, 300).images.cpu(), train.range(100, 300).images));
}

INSTANTIATE_TEST_SUITE_P(Datasets, DatasetTest,
                         ::testing::Combine(::testing::Values("mnist", "fashion-mnist"), ::testing::Bool()),
                         [](const auto& info) {
                           return (std::get<0>(info.param) == "mnist" ? std::string("Mnist") : "FashionMnist") +
                                  (std::get<1>(info.param) ? "Normalized" : "Raw");
                         });

}  // namespace
}  // namespace ddp
