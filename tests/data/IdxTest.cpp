#include "data/Idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "common/Errors.h"
#include "data/Dataset.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ddp_idx_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::vector<uint8_t> header(uint32_t magic, std::vector<uint32_t> dims) {
    std::vector<uint8_t> bytes;
    auto put = [&](uint32_t v) {
      for (int s = 24; s >= 0; s -= 8) bytes.push_back(uint8_t(v >> s));
    };
    put(magic);
    for (uint32_t d : dims) put(d);
    return bytes;
  }
  void write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::ofstream(path(name), std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  void write_gz(const std::string& name, const std::vector<uint8_t>& bytes) const {
    gzFile f = gzopen(path(name).c_str(), "wb");
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
  }
  static std::vector<uint8_t> images(uint32_t n) {
    auto bytes = header(0x803, {n, 28, 28});
    for (uint32_t i = 0; i < n * 784; ++i) bytes.push_back(uint8_t(i % 251));
    return bytes;
  }
  static std::vector<uint8_t> labels(uint32_t n) {
    auto bytes = header(0x801, {n});
    for (uint32_t i = 0; i < n; ++i) bytes.push_back(uint8_t(i % 10));
    return bytes;
  }
  // The InputError message a read must fail with.
  template <class F>
  static std::string error_of(F read) {
    try {
      read();
    } catch (const InputError& e) {
      return e.what();
    }
    ADD_FAILURE() << "read succeeded";
    return "";
  }

  fs::path dir_;
};

TEST_F(IdxTest, ReadsPlainAndGzipFilesAlike) {
  write("img", images(5));
  write_gz("img.gz", images(5));
  const torch::Tensor plain = read_idx_images(path("img"));
  const torch::Tensor gz = read_idx_images(path("img.gz"));
  ASSERT_EQ(plain.sizes(), torch::IntArrayRef({5, 28, 28}));
  EXPECT_TRUE(plain.equal(gz));
  EXPECT_EQ(plain[1][0][0].item<int>(), 784 % 251);
  write_gz("lab.gz", labels(5));
  EXPECT_EQ(read_idx_labels(path("lab.gz"))[3].item<int>(), 3);
}

// The inflated size in the trailer, reserved up front, is the last member's only: a file of
// several members (gzip a b > c) must still read whole, and the image tensor must own its bytes.
TEST_F(IdxTest, ConcatenatedGzipMembersReadWhole) {
  const std::vector<uint8_t> bytes = images(5);
  write_gz("cat.gz", std::vector<uint8_t>(bytes.begin(), bytes.begin() + 3000));
  gzFile f = gzopen(path("cat.gz").c_str(), "ab");
  gzwrite(f, bytes.data() + 3000, unsigned(bytes.size() - 3000));
  gzclose(f);
  write("img", bytes);
  const torch::Tensor whole = read_idx_images(path("cat.gz"));
  EXPECT_TRUE(whole.equal(read_idx_images(path("img"))));
  EXPECT_EQ(whole[4][27][27].item<int>(), (5 * 784 - 1) % 251);
}

TEST_F(IdxTest, WriterRoundTrips) {
  const torch::Tensor original = torch::randint(0, 256, {3, 28, 28}, torch::kUInt8);
  write_idx_images(path("w"), original);
  EXPECT_TRUE(read_idx_images(path("w")).equal(original));
}

TEST_F(IdxTest, WrongMagicNamesTheFile) {
  write("lab", labels(4));
  const std::string e = error_of([&] { read_idx_images(path("lab")); });
  EXPECT_NE(e.find(path("lab")), std::string::npos) << e;
  EXPECT_NE(e.find("wrong IDX magic 0x00000801"), std::string::npos) << e;
}

TEST_F(IdxTest, TruncatedPayloadAndHeaderAreRefused) {
  auto bytes = images(4);
  bytes.resize(bytes.size() - 100);
  write("short", bytes);
  EXPECT_NE(error_of([&] { read_idx_images(path("short")); }).find("truncated"), std::string::npos);
  write("tiny", {0, 0, 8});
  EXPECT_NE(error_of([&] { read_idx_images(path("tiny")); }).find("truncated IDX header"), std::string::npos);
  auto extra = labels(4);
  extra.push_back(1);
  write("extra", extra);
  EXPECT_NE(error_of([&] { read_idx_labels(path("extra")); }).find("trailing bytes"), std::string::npos);
}

TEST_F(IdxTest, AbsurdHeaderCountsDoNotAllocate) {
  auto bytes = header(0x803, {0xffffffffu, 0xffffffffu, 0xffffffffu});
  bytes.resize(bytes.size() + 10);
  write("huge", bytes);
  const std::string e = error_of([&] { read_idx_images(path("huge")); });
  EXPECT_NE(e.find("absurd"), std::string::npos) << e;
}

TEST_F(IdxTest, WrongImageSizeIsRefused) {
  auto bytes = header(0x803, {1, 32, 32});
  bytes.resize(bytes.size() + 32 * 32);
  write("big", bytes);
  EXPECT_NE(error_of([&] { read_idx_images(path("big")); }).find("32x32, expected 28x28"), std::string::npos);
}

TEST_F(IdxTest, LabelsOutOfRangeAreRefused) {
  auto bytes = labels(3);
  bytes.back() = 12;
  write("lab", bytes);
  const std::string e = error_of([&] { read_idx_labels(path("lab")); });
  EXPECT_NE(e.find("label 12 at index 2 is out of range 0-9"), std::string::npos) << e;
}

TEST_F(IdxTest, CorruptGzipIsRefused) {
  write_gz("c.gz", images(3));
  std::vector<uint8_t> gz(fs::file_size(path("c.gz")));
  std::ifstream(path("c.gz"), std::ios::binary).read(reinterpret_cast<char*>(gz.data()), gz.size());
  for (size_t i = 20; i < gz.size() - 8; i += 7) gz[i] ^= 0x5a;
  write("bad.gz", gz);
  EXPECT_NE(error_of([&] { read_idx_images(path("bad.gz")); }).find(path("bad.gz")), std::string::npos);
  gz.resize(gz.size() / 2);
  write("cut.gz", gz);
  EXPECT_NE(error_of([&] { read_idx_images(path("cut.gz")); }).find("gzip"), std::string::npos);
}

TEST_F(IdxTest, DatasetRefusesMismatchedCountsAndMissingFiles) {
  write_gz("train-images-idx3-ubyte.gz", images(6));
  write_gz("train-labels-idx1-ubyte.gz", labels(5));
  write("t10k-images-idx3-ubyte", images(2));
  write("t10k-labels-idx1-ubyte", labels(2));
  const std::string e = error_of([&] { load_dataset("mnist", dir_.string(), true); });
  EXPECT_NE(e.find("holds 6 images but"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { load_dataset("mnist", path("nowhere"), true); }).find("missing train-images-idx3-ubyte"),
            std::string::npos);
}

TEST_F(IdxTest, DatasetHoldsEachSplitAsOnePixelTensorAndScalesBatches) {
  write_gz("train-images-idx3-ubyte.gz", images(6));
  write_gz("train-labels-idx1-ubyte.gz", labels(6));
  write("t10k-images-idx3-ubyte", images(2));
  write("t10k-labels-idx1-ubyte", labels(2));
  const Dataset raw = load_dataset("mnist", dir_.string(), false);
  ASSERT_EQ(raw.train.images.sizes(), torch::IntArrayRef({6, 784}));
  EXPECT_EQ(raw.train.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(raw.train.labels.scalar_type(), torch::kInt64);
  EXPECT_FLOAT_EQ(raw.train.range(0, 1).images[0][250].item<float>(), 250.0f / 255.0f);
  const Dataset normalized = load_dataset("mnist", dir_.string(), true);
  EXPECT_NEAR(normalized.train.rows(torch::tensor({0})).images[0][0].item<float>(), (0.0 - 0.1307) / 0.3081, 1e-6);
}

}  // namespace
}  // namespace ddp
