// The checkpoint metadata (train/TrainingState.h) through the bytes a checkpoint file holds.
#include "train/TrainingState.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/Errors.h"
#include "model/Model.h"

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

// A checkpoint of a 3-epoch run of 2 ranks x 64 on 8000 samples under `decay`, at step 77.
TrainingCheckpoint checkpoint_of(const Config& config) {
  RunIdentity identity;
  identity.world_size = 2;
  identity.local_batch = config.train.local_batch;
  identity.global_batch = 2 * config.train.local_batch;
  identity.steps_per_epoch = 62;
  identity.train_samples = 8000;
  identity.config = dump_config(config);
  identity.model = describe(config.model);
  identity.model_shapes = parameter_shapes(*make_model_shapes(config.model));
  TrainingPosition at;
  at.step = 77;
  return through_a_file(identity, at);
}

Config three_epochs(LrDecay decay) {
  Config config = parse_config("train: {epochs: 3}\n", "test");
  config.lr.decay = decay;
  config.lr.warmup_epochs = 1;
  config.lr.step_every_epochs = 2;
  return config;
}

// Issue 24: a cosine run stopped at step 77 of 3 epochs and resumed with train.epochs=4 trained
// steps 78.. at the lr of a 4-epoch run (0.019681 instead of 0.019378 at step 78).
TEST(TrainingState, MoreEpochsOnResumeAreRefusedWhereTheDecaySpansTheRun) {
  const Config written = three_epochs(LrDecay::Cosine);
  Config more = written;
  more.train.epochs = 4;
  try {
    check_resume_compatible(checkpoint_of(written), more, 2, 8000, "ckpt");
    ADD_FAILURE() << "resumed with another train.epochs under cosine";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("key 'train.epochs' was 3 when the checkpoint was written and is 4 now"), std::string::npos)
        << message;
    EXPECT_NE(message.find("lr.decay=cosine spans the whole run"), std::string::npos) << message;
    EXPECT_NE(message.find("lr.decay constant, step, exponential, cyclic may take other train.epochs"),
              std::string::npos)
        << message;
  }
  EXPECT_NO_THROW(check_resume_compatible(checkpoint_of(written), written, 2, 8000, "ckpt"));
}

TEST(TrainingState, MoreEpochsOnResumeAreAllowedWhereTheLrDependsOnTheStepAlone) {
  for (const LrDecay decay : {LrDecay::Constant, LrDecay::Step, LrDecay::Exponential, LrDecay::Cyclic}) {
    const Config written = three_epochs(decay);
    Config more = written;
    more.train.epochs = 4;
    EXPECT_NO_THROW(check_resume_compatible(checkpoint_of(written), more, 2, 8000, "ckpt")) << to_string(decay);
  }
  // Another decay is refused as such, whatever the epochs.
  Config other = three_epochs(LrDecay::Cosine);
  other.train.epochs = 4;
  try {
    check_resume_compatible(checkpoint_of(three_epochs(LrDecay::Constant)), other, 2, 8000, "ckpt");
    ADD_FAILURE() << "resumed with another lr.decay";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'lr.decay' was constant"), std::string::npos) << e.what();
  }
}

// A checkpoint resumes only the model that wrote it: another model key is refused by name, the same
// keys with other shapes (another build's checkpoint) by the shapes it recorded; one written before
// model.name existed is simple_nn's.
TEST(TrainingState, AnotherModelIsRefusedByItsKeysAndShapes) {
  const Config lenet = parse_config("model: {name: lenet5}\n", "test");
  const Config mlp = parse_config("model: {name: mlp, hidden: [256, 64]}\n", "test");
  EXPECT_NO_THROW(check_resume_compatible(checkpoint_of(lenet), lenet, 2, 8000, "ckpt"));
  try {
    check_resume_compatible(checkpoint_of(lenet), mlp, 2, 8000, "ckpt");
    ADD_FAILURE() << "resumed lenet5's checkpoint as an mlp";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'model.name' was lenet5 when the checkpoint was written and is mlp"),
              std::string::npos)
        << e.what();
  }
  TrainingCheckpoint other_build = checkpoint_of(mlp);
  other_build.meta["model_shapes"] = "fc1.weight [300, 784], fc1.bias [300]";
  try {
    check_resume_compatible(other_build, mlp, 2, 8000, "ckpt");
    ADD_FAILURE() << "resumed a checkpoint of other shapes";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("ckpt: written by model mlp [256, 64] (fc1.weight [300, 784]"), std::string::npos)
        << message;
    EXPECT_NE(message.find("this run builds model mlp [256, 64] (fc1.weight [256, 784]"), std::string::npos) << message;
  }
  TrainingCheckpoint older = checkpoint_of(Config{});
  older.meta.erase("model");
  older.meta.erase("model_shapes");
  EXPECT_EQ(identity_of(older, "old").model, "simple_nn");
  EXPECT_NO_THROW(check_resume_compatible(older, Config{}, 2, 8000, "old"));
  EXPECT_THROW(check_resume_compatible(older, lenet, 2, 8000, "old"), InputError);
}

}  // namespace
}  // namespace ddp
