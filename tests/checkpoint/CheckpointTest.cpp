#include "checkpoint/Checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ddp {
namespace {

namespace fs = std::filesystem;

TrainingCheckpoint sample(int64_t step) {
  TrainingCheckpoint c;
  c.meta = {{"step", step}, {"config", "train: {epochs: 2}\n"}};
  c.blobs["model"] = std::string("\x00\x01\x02model", 8);
  c.blobs["optimizer"] = std::string(100000, 'o');
  return c;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ddp_ckpt_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CheckpointTest, RoundTrips) {
  const std::string bytes = encode_checkpoint(sample(7));
  const TrainingCheckpoint back = decode_checkpoint(bytes, "mem");
  EXPECT_EQ(back.meta.at("step"), 7);
  EXPECT_EQ(back.blobs, sample(7).blobs);
}

TEST_F(CheckpointTest, EveryFlippedByteIsDetected) {
  const std::string bytes = encode_checkpoint(sample(1));
  for (size_t i = 0; i < bytes.size(); i += 997) {
    std::string bad = bytes;
    bad[i] = char(bad[i] ^ 0x40);
    EXPECT_THROW(decode_checkpoint(bad, "mem"), CheckpointError) << "byte " << i;
  }
  EXPECT_THROW(decode_checkpoint(bytes.substr(0, bytes.size() / 2), "mem"), CheckpointError);
  EXPECT_THROW(decode_checkpoint("", "mem"), CheckpointError);
  try {
    decode_checkpoint(bytes.substr(0, 100), "some/file");
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("some/file"), std::string::npos);
  }
}

TEST_F(CheckpointTest, StoreKeepsTheNewestK) {
  CheckpointStore store(dir_, 2);
  for (int64_t step : {10, 20, 30}) store.save(step, sample(step));
  const auto paths = store.list();
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0].filename(), "ckpt-0000000020.ddpckpt");
  EXPECT_EQ(paths[1].filename(), "ckpt-0000000030.ddpckpt");
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_EQ(entry.path().extension(), ".ddpckpt") << "temporary file left behind: " << entry.path();
}

TEST_F(CheckpointTest, NewestValidSkipsACorruptOneWithAWarning) {
  CheckpointStore store(dir_, 3);
  store.save(1, sample(1));
  const fs::path newest = store.save(2, sample(2));
  fs::resize_file(newest, fs::file_size(newest) - 10);  // torn write
  std::vector<std::string> warnings;
  const auto found = store.newest_valid([&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->second.meta.at("step"), 1);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("ckpt-0000000002"), std::string::npos) << warnings[0];
  EXPECT_FALSE(CheckpointStore(dir_ / "none", 1).newest_valid([](const std::string&) {}).has_value());
}

TEST_F(CheckpointTest, RemoveTemporariesTakesOnlyInterruptedCheckpointWrites) {
  CheckpointStore store(dir_, 3);
  const fs::path kept = store.save(1, sample(1));
  for (const char* name : {"ckpt-0000000002.ddpckpt.tmp", "notes.tmp", "ckpt-0000000003.ddpckpt.tmp.bak"})
    std::ofstream(dir_ / name) << "x";
  const auto removed = store.remove_temporaries();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], dir_ / "ckpt-0000000002.ddpckpt.tmp");
  EXPECT_FALSE(fs::exists(dir_ / "ckpt-0000000002.ddpckpt.tmp"));
  EXPECT_TRUE(fs::exists(dir_ / "notes.tmp") && fs::exists(dir_ / "ckpt-0000000003.ddpckpt.tmp.bak") && fs::exists(kept));
  EXPECT_TRUE(CheckpointStore(dir_ / "none", 1).remove_temporaries().empty());
}

// An intact checkpoint that cannot be used (its metadata does not read back) must not block the
// older ones: it is skipped with a warning that names it and says why.
TEST_F(CheckpointTest, NewestValidSkipsAnUnusableOneSayingWhy) {
  CheckpointStore store(dir_, 3);
  store.save(1, sample(1));
  store.save(2, sample(2));
  const auto refuse_step_2 = [](const TrainingCheckpoint& checkpoint, const std::string& source) {
    if (checkpoint.meta.at("step") == 2) throw CheckpointError(source + ": metadata incomplete: no number");
  };
  std::vector<std::string> warnings;
  const auto found = store.newest_valid([&](const std::string& w) { warnings.push_back(w); }, refuse_step_2);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->second.meta.at("step"), 1);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("unusable checkpoint"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("ckpt-0000000002.ddpckpt: metadata incomplete: no number"), std::string::npos)
      << warnings[0];
}

}  // namespace
}  // namespace ddp
