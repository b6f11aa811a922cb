// The checkpoint metadata (train/TrainingState.h) through the bytes a checkpoint file holds.
#include "train/TrainingState.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace ddp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TrainingCheckpoint through_a_file(const RunIdentity& identity, const TrainingPosition& position) {
  TrainingCheckpoint checkpoint;
  checkpoint.meta = checkpoint_meta(identity, position);
  checkpoint.blobs["model"] = "m";
  return decode_checkpoint(encode_checkpoint(checkpoint), "mem");
}

// An epoch that diverged under train.on_nonfinite=skip evaluates to a NaN test loss: JSON has no
// NaN, and nlohmann/json writes null, which used to make the checkpoint impossible to resume.
TEST(TrainingState, NonFiniteValuesRoundTripThroughACheckpoint) {
  TrainingPosition at;
  at.step = 77;
  at.final_test_loss = std::numeric_limits<double>::quiet_NaN();
  at.final_train_loss = kInf;
  at.noise.g2_ema = -kInf;
  at.progress = 12.5;
  const TrainingCheckpoint back = through_a_file(RunIdentity{}, at);
  const TrainingPosition read = position_of(back, "mem");
  EXPECT_EQ(read.step, 77);
  EXPECT_TRUE(std::isnan(read.final_test_loss));
  EXPECT_EQ(read.final_train_loss, kInf);
  EXPECT_EQ(read.noise.g2_ema, -kInf);
  EXPECT_EQ(read.progress, 12.5);
  EXPECT_EQ(back.meta.at("final_test_loss"), "NaN") << "stored by name";
}

TEST(TrainingState, AnOlderBuildsNullReadsAsNaN) {
  TrainingCheckpoint checkpoint = through_a_file(RunIdentity{}, TrainingPosition{});
  checkpoint.meta["final_test_loss"] = nullptr;  // what nlohmann/json made of a NaN
  EXPECT_TRUE(std::isnan(position_of(checkpoint, "mem").final_test_loss));
  // A null where an integer belongs is still refused: no number can stand for it.
  checkpoint.meta["step"] = nullptr;
  EXPECT_THROW(position_of(checkpoint, "mem"), CheckpointError);
}

TEST(TrainingState, NamesAreOnlyReadWhereANumberBelongs) {
  RunIdentity identity;
  identity.version = "NaN";  // a string field keeps its text
  const TrainingCheckpoint back = through_a_file(identity, TrainingPosition{});
  EXPECT_EQ(identity_of(back, "mem").version, "NaN");
  TrainingCheckpoint bad = back;
  bad.meta["final_test_loss"] = "nan?";
  EXPECT_THROW(position_of(bad, "mem"), CheckpointError);
}

}  // namespace
}  // namespace ddp
