#pragma once
// The training loop: epochs of sharded steps, evaluation, metrics, checkpoints, and the
// agreed stops (a signal, a step budget, a non-finite value). It sees the Communicator
// interface only; which backend sits behind it was decided in set-up (train/Setup.h).
//
//   run:  until the schedule says it is finished (train.epochs epochs; AdaScale: its
//         progress target, possibly mid-epoch): begin_epoch, run_steps (take_step ...),
//         end_epoch (evaluate, metrics, checkpoint); then the summary.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/Checkpoint.h"
#include "comm/Communicator.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "data/DistributedSampler.h"
#include "metrics/NoiseScale.h"
#include "metrics/Progress.h"
#include "metrics/RunDirectory.h"
#include "schedule/TrainingSchedule.h"
#include "train/Replica.h"
#include "train/Evaluate.h"
#include "train/TrainingState.h"

namespace ddp {

enum class Outcome {
  Completed,  // all epochs trained
  Stopped,    // a stop request or train.stop_after_steps: checkpointed, resumable
  NonFinite,  // NaN/Inf with train.on_nonfinite=stop: last good state checkpointed
};

// Why a run Stopped: every rank learns the same.
enum class StopCause {
  None,        // not stopped
  StepBudget,  // train.stop_after_steps
  Request,     // `stop_requested` was true on some rank (which one, it alone knows)
};

struct TrainingResult {
  Outcome outcome = Outcome::Completed;
  StopCause stop_cause = StopCause::None;
  int64_t step = 0;  // steps done; NonFinite: the last good state's step
  // NonFinite: the step whose check found the NaN/Inf. With deferred checks (train.check_every
  // > 1) it appeared in one of the steps from `step` (the last good state) to this one.
  int64_t nonfinite_step = -1;
  int64_t check_every = 1;
  double final_test_accuracy = 0;
  double final_test_loss = 0;
  double samples_per_second = 0;
  double wall_seconds = 0;
  std::string checkpoint;  // the last checkpoint written (rank 0), if any
  nlohmann::json summary;  // as in summary.json (every rank); null when Stopped
};

// Where rank 0 writes; null on the other ranks, and wherever nothing should be written.
struct TrainerOutputs {
  RunDirectory* run_dir = nullptr;
  CheckpointStore* checkpoints = nullptr;
};

class Trainer {
 public:
  // Builds the replica (rank 0's parameters on every rank) and the data order. Collective:
  // every rank of `comm` constructs its Trainer together.
  Trainer(const Config& config, Communicator& comm, const Dataset& dataset, torch::Device device,
          TrainerOutputs outputs = {});

  // Continue from `checkpoint` (on every rank) instead of step 0; before run().
  void resume(const TrainingCheckpoint& checkpoint);

  // Trains to the end or to an agreed stop. `stop_requested` is asked every step: true on
  // any rank stops every rank together at the next flag check, with a checkpoint.
  TrainingResult run(const std::function<bool()>& stop_requested = {});

  Model& model() { return replica_.model(); }

 private:
  using Clock = std::chrono::steady_clock;
  // The epoch in progress.
  struct EpochProgress {
    int64_t epoch = 0;
    int64_t first_step = 0;   // its first step on this process (> 0 when resumed mid-epoch)
    int64_t s = 0;            // its steps done
    torch::Tensor loss_sum;   // of the applied steps, on the device: read once an epoch
    int64_t counted = 0;      // applied steps
    double lr = 0;            // of the last step taken
    double gain = 1;          // of the last step taken (the lr rule's factor; AdaScale's r)
    Clock::time_point start;
    double eval_seconds = 0;  // spent in its evaluations so far: not training time
    torch::Tensor order;      // this rank's sample order for the epoch
  };
  // A steps.jsonl line (rank 0) whose loss is still on the device, read with the noise samples.
  struct StepRecord {
    int64_t step = 0;           // steps done, this one included (as metrics.jsonl and checkpoints count)
    int64_t epoch = 0;          // 1-based, as in metrics.jsonl
    double lr = 0;
    double gain = 0, progress = 0;  // the step's gain and the progress after it
    torch::Tensor mean_loss;    // over every (virtual) rank
    size_t noise_samples = 0;   // noise_samples_ taken up to this step: its line shows the estimate with them
    NoiseSample own_noise;      // this step's measurement (undefined tensors: none), for its raw estimates
  };
  // With deferred checks, where a NaN found at a check sends the loop back to.
  struct RollbackPoint {
    int64_t step = 0, step_in_epoch = 0, counted = 0;
    double progress = 0;
    torch::Tensor loss_sum;
    size_t noise_samples = 0, step_records = 0;
  };

  void announce();
  std::string sync_text() const;
  EpochProgress begin_epoch();
  void run_steps(EpochProgress& e, const std::function<bool()>& stop_requested);
  StepResult take_step(EpochProgress& e, bool checkpoint_due, const std::function<bool()>& stop_requested);
  void keep_rollback_point(const EpochProgress& e, int64_t step_in_epoch);
  void roll_back(EpochProgress& e);
  void end_epoch(EpochProgress& e);
  // Evaluates the test set (every rank), writes its evals.jsonl line and notes the target;
  // `seconds`: the run's training time so far.
  Evaluation evaluate_now(EpochProgress& e, double seconds);
  double training_seconds(const EpochProgress& e) const;  // of the epoch so far, evaluations left out
  void end_interrupted_epoch(const EpochProgress& e);
  void add_epoch_times(double seconds);  // the epoch in progress, into the totals
  void write_metrics(const EpochProgress& e, double train_loss, double test_loss, double test_accuracy,
                     double samples_per_second);
  void report_epoch(const EpochProgress& e, double train_loss, const Evaluation& eval, double throughput);
  void write_step(const StepRecord& record, double train_loss, const std::optional<GradientNoiseScale::Estimate>& raw);
  nlohmann::json noise_estimate() const;  // the noise-scale keys of every output
  nlohmann::json pace(double gain, double progress) const;  // AdaScale's gain and progress keys
  nlohmann::json time_to_target() const;                     // metrics.target_accuracy's keys
  bool eval_due(int64_t steps_done) const;                   // metrics.eval_every_steps
  // The run is complete: train.epochs done (AdaScale: its progress), or train.stop_at_target's target reached.
  bool done() const;
  // The smoothed noise estimate the lr rule may use; nullopt before the first measurement.
  std::optional<GradientNoise> gradient_noise() const;
  // An adaptive rule's lr for the step being taken, from the noise measured up to and including
  // it (StepOptions::lr_after_noise, once the step's own sample is among noise_samples_).
  double lr_with_own_noise(EpochProgress& e);
  // Reads the pending noise samples and step losses from the device, folds the samples into
  // the estimator and writes the pending steps.jsonl lines.
  void flush_measurements();
  // Every rank calls it at the same step (decisions are agreed); rank 0 writes.
  void save_checkpoint(TrainingPosition at, const torch::Tensor& loss_sum);
  TrainingPosition position_in(const EpochProgress& e, int64_t step_in_epoch) const;
  TrainingResult finish(double wall_seconds);
  nlohmann::json summary(const TrainingResult& result) const;

  const Config& config_;
  Communicator& comm_;
  torch::Device device_;
  TrainerOutputs out_;
  std::string dataset_name_;
  Split train_, test_;  // resident on the device as uint8: a step gathers rows by index and scales them
  DistributedSampler sampler_;
  TrainingSchedule schedule_;
  Replica replica_;
  Progress progress_;
  std::optional<GradientNoiseScale> noise_scale_;
  std::vector<NoiseSample> noise_samples_;  // measured, not yet read from the device
  int64_t noise_every_;                     // measure every this many steps
  std::vector<StepRecord> step_records_;    // steps.jsonl lines not yet written
  int64_t check_every_;
  std::vector<std::string> hosts_;  // every rank's host name, in rank order
  TrainingPosition pos_;            // step and epoch live; times and losses of completed epochs
  RollbackPoint good_;
  Outcome outcome_ = Outcome::Completed;
  StopCause stop_cause_ = StopCause::None;
  int64_t nonfinite_step_ = -1;
  std::string last_checkpoint_;
  std::optional<std::pair<int64_t, Evaluation>> last_eval_;  // (step, result) of the latest evaluation
};

}  // namespace ddp
