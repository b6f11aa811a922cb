// Writes on a disk that is really full: a tmpfs of the test's own, mounted in SetUp (skipped
// where mounting is not permitted) and removed in TearDown.
#include "common/Files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "checkpoint/Checkpoint.h"
#include "common/Errors.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ddp_disk_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=256k") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs on " << dir_ << " (" << std::strerror(errno)
                   << "): the full-disk tests need root (CAP_SYS_ADMIN)";
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }
  // Takes every free block with a filler file.
  void fill() const {
    const int fd = ::open((dir_ / "filler").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ::close(fd);
  }
  fs::path dir_;
  bool mounted_ = false;
};

TEST_F(FullDiskTest, AFailedAtomicWriteKeepsTheOldFileNamesTheReasonAndLeavesNoTemporary) {
  const fs::path file = dir_ / "summary.json";
  write_file_atomically(file, "old\n");
  fill();
  try {
    write_file_atomically(file, std::string(20000, 'n'));
    FAIL() << "a write on a full disk succeeded";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOSPC);
    EXPECT_NE(std::string(e.what()).find(file.string() + ": cannot write: No space left on device"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(read_all(file), "old\n");
  EXPECT_FALSE(fs::exists(temporary_path_of(file)));
}

TEST_F(FullDiskTest, ALineTheDiskRefusedIsCutOffAgain) {
  const fs::path file = dir_ / "steps.jsonl";
  LineFile lines(file, LineFile::Mode::Truncate);
  lines.append("{\"step\": 1}");
  fill();
  // The line's first 4 KB go into the block the first line began; the rest finds no block.
  EXPECT_THROW(lines.append(std::string(6000, 'x')), std::system_error);
  EXPECT_EQ(read_all(file), "{\"step\": 1}\n");
}

TEST_F(FullDiskTest, ACheckpointThatDoesNotFitLeavesTheOthersAndNoTemporary) {
  CheckpointStore store(dir_ / "checkpoints", 3);
  TrainingCheckpoint checkpoint;
  checkpoint.meta = {{"step", 1}};
  checkpoint.blobs["model"] = std::string(100000, 'm');
  store.save(1, checkpoint);
  store.save(2, checkpoint);
  EXPECT_THROW(store.save(3, checkpoint), std::system_error);  // 3 x 100 KB > 256 KB
  ASSERT_EQ(store.list().size(), 2u);
  EXPECT_EQ(read_checkpoint(store.list().back()).blobs, checkpoint.blobs);
  EXPECT_FALSE(fs::exists(dir_ / "checkpoints" / "ckpt-0000000003.ddpckpt.tmp"));
}

TEST(FullDiskMessage, SaysWhatToDoOnlyForAFullDisk) {
  const std::system_error full(ENOSPC, std::generic_category(), "ckpt-0000000375.ddpckpt: cannot write");
  EXPECT_EQ(message_of(full).rfind("ckpt-0000000375.ddpckpt: cannot write: No space left on device; the disk is full", 0),
            0u)
      << message_of(full);
  EXPECT_NE(message_of(full).find("checkpoint.keep"), std::string::npos);
  EXPECT_NE(message_of(full).find("--resume"), std::string::npos);
  EXPECT_EQ(exit_code_of(full), kExitFailure);  // not the user's input: the same command works once there is room
  const std::filesystem::filesystem_error mkdir_full("cannot create directories", "/x",
                                                     std::make_error_code(std::errc::no_space_on_device));
  EXPECT_TRUE(is_disk_full(mkdir_full));
  const std::system_error denied(EACCES, std::generic_category(), "metrics.jsonl: cannot write");
  EXPECT_EQ(message_of(denied), "metrics.jsonl: cannot write: Permission denied");
}

}  // namespace
}  // namespace ddp
