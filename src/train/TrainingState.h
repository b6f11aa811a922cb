#pragma once
// What a checkpoint says besides the tensors: which run wrote it (RunIdentity) and where
// that run stood (TrainingPosition). Each field is declared once, in the struct and in
// its NLOHMANN_DEFINE line below it, which makes the checkpoint metadata both ways; a
// missing key throws nlohmann::json::out_of_range naming it. A non-finite number (the test
// loss of an epoch that diverged) is stored by name ("NaN", "Infinity", "-Infinity"), since
// JSON has none, and reads back as itself.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "checkpoint/Checkpoint.h"
#include "config/Config.h"
#include "metrics/NoiseScale.h"

namespace ddp {

// The shape of the experiment: a resume must not change it.
struct RunIdentity {
  std::string version;
  int64_t world_size = 1;
  int64_t virtual_ranks = 1;
  int64_t local_batch = 0;
  int64_t global_batch = 0;
  int64_t steps_per_epoch = 0;
  int64_t train_samples = 0;
  std::string config;            // dump_config of the run
  std::string parameters_crc32;  // of the parameters saved with it
  std::string model;             // describe(ModelConfig): "simple_nn", "mlp [1024, 1024]", "lenet5"
  std::string model_shapes;      // parameter_shapes of the model: every parameter and buffer, named
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RunIdentity, version, world_size, virtual_ranks, local_batch, global_batch,
                                   steps_per_epoch, train_samples, config, parameters_crc32, model, model_shapes)

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(GradientNoiseScale::State, g2_ema, s_ema, weight, samples)

// Where training stands, exactly enough to continue bitwise where it stopped.
struct TrainingPosition {
  int64_t step = 0;           // steps done in total (applied or skipped)
  int64_t epoch = 0;          // the epoch in progress; with step_in_epoch 0, the epochs completed
  int64_t step_in_epoch = 0;  // steps of `epoch` done
  double epoch_loss_sum = 0;  // the epoch's applied steps' losses so far, averaged over ranks
  int64_t epoch_counted_steps = 0;  // the epoch's applied steps so far
  int64_t skipped_steps = 0;        // non-finite steps skipped (train.on_nonfinite=skip)
  double train_seconds = 0, compute_seconds = 0, comm_seconds = 0;
  double final_test_accuracy = 0, final_test_loss = 0, final_train_loss = 0;  // of the last epoch
  GradientNoiseScale::State noise{};  // all zero where the noise scale is not measured
  // lr.rule=adascale: the scale-invariant progress tau, in base-batch steps (the sum of the
  // applied steps' gains); 0 under the other rules.
  double progress = 0;
  int64_t comm_bytes = 0;  // handed to the gradient exchange's collectives so far
  // metrics.target_accuracy: the first evaluation that reached it (steps done, training
  // seconds then); -1 until one did.
  int64_t target_step = -1;
  double target_seconds = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainingPosition, step, epoch, step_in_epoch, epoch_loss_sum,
                                   epoch_counted_steps, skipped_steps, train_seconds, compute_seconds, comm_seconds,
                                   final_test_accuracy, final_test_loss, final_train_loss, noise, progress,
                                   comm_bytes, target_step, target_seconds)

// The checkpoint metadata: identity and position side by side in one JSON object.
nlohmann::json checkpoint_meta(const RunIdentity& identity, const TrainingPosition& position);
// Both read back; throws CheckpointError naming `source` when a key is missing or mistyped.
// Together they are the check that a checkpoint's metadata can be resumed from.
RunIdentity identity_of(const TrainingCheckpoint& checkpoint, const std::string& source);
TrainingPosition position_of(const TrainingCheckpoint& checkpoint, const std::string& source);

// Throws InputError when `checkpoint` cannot continue this run: a different simulated
// world (ranks x virtual ranks) or local batch would silently change the experiment, and
// so would a different training set size or a different value of any key outside the
// few a resume may change.
void check_resume_compatible(const TrainingCheckpoint& checkpoint, const Config& config, int world_size,
                             int64_t train_samples, const std::string& source);

}  // namespace ddp
