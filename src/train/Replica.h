#pragma once
// One rank's copy of the model with its optimizer and gradient synchroniser: the unit
// that takes a data-parallel SGD step. The Trainer and the benchmarks drive this same class.
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "comm/Communicator.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "model/Model.h"
#include "sync/GradientSynchronizer.h"
#include "train/Optimizer.h"

namespace ddp {

// One step's gradient-noise measurement, as 0-dim tensors on the model's device (read
// later, so a GPU step needs no host synchronisation): the mean over all (virtual)
// ranks of each micro-batch gradient's squared norm, and the averaged gradient's.
struct NoiseSample {
  torch::Tensor small_squared_norm;
  torch::Tensor big_squared_norm;
};

struct StepTimes {
  double compute_seconds = 0;  // forward, backward, optimizer
  double comm_seconds = 0;     // the gradient exchange, compression arithmetic included, and sync BN's sums
  int64_t comm_bytes = 0;      // handed to the gradient exchange's collectives (and local SGD's averaging,
                               // sync batch norm's statistics)
};

// What one step does besides forward, backward, all-reduce and update.
struct StepOptions {
  double lr = 0;
  NoiseSample* noise = nullptr;  // set: measure the gradient noise into it
  bool request_stop = false;     // this rank asks every rank to stop after this step
  bool check = true;             // read the agreed flags (see Replica::step)
  bool mean_loss = false;        // also average the loss over all ranks (StepResult::mean_loss)
  int64_t step = 0;              // the steps done before this one (when compression and local SGD start)
  // Set where the lr follows this step's own gradient noise (an adaptive rule: AdaScale's gain
  // from the statistics of the step it scales, as Johnson et al.'s algorithm 1, AdaptDL and
  // fairscale take it): asked for the lr once the gradients are averaged, `noise` filled (or not:
  // `noise_measured`) and the flags read, and only for an update that is applied; it replaces
  // `lr`. Needs `check`: the flags say whether the update is applied.
  std::function<double(bool noise_measured)> lr_after_noise;
};

struct StepResult {
  torch::Tensor loss;           // this rank's mean loss (0-dim, on the device)
  torch::Tensor mean_loss;      // with StepOptions::mean_loss: the mean over every (virtual) rank, likewise
  bool checked = false;         // the agreed flags were read; the two below mean nothing otherwise
  bool nonfinite = false;       // some rank's loss or gradient was NaN/Inf in this step (or, with deferred
                                // checks, in an unchecked one since the last check): this update was not applied
  bool stop_requested = false;  // some rank asked to stop (after this step)
  bool noise_measured = false;  // StepOptions::noise was filled: only where the gradients' exact mean was formed
};

class Replica {
 public:
  // Scalars that ride at the end of every gradient exchange (see Replica.cpp).
  static constexpr int64_t kExtraSlots = 4;

  // Builds model.name's model from `config.train.seed` (and model.batch_norm) on `device`, then
  // broadcasts rank 0's parameters and buffers so every replica starts identical whatever
  // the seed did. `warmup_steps`: where comm.*_start_step "auto" starts compression or local SGD.
  Replica(const Config& config, Communicator& comm, torch::Device device, int64_t warmup_steps = 0);

  // Forward and backward on this rank's batch, the gradient average across ranks, and
  // one SGD step at `options.lr` (or `options.lr_after_noise`'s; optim.name=lars: on the
  // LARS-rescaled gradient). With train.virtual_ranks = v > 1 the batch holds v
  // virtual ranks' equal micro-batches, each back-propagated in turn with its loss scaled
  // by 1/v, so the accumulated gradient is their mean, as v real ranks' all-reduce would
  // make it (batch_norm=sync: one pass over the whole batch instead, see Replica.cpp;
  // its noise measurement is then the process's gradient, and with sync BN any rank's
  // gradient is a share of the global one, not a small batch's: the Trainer skips it).
  // With `options.noise` set, also measures the gradient noise (the raw
  // data-loss gradient, before weight decay and momentum). Health and stop flags ride in
  // the same all-reduce, so every rank learns of a NaN or a stop request on any rank at no
  // cost, and no rank applies an update that another refuses; so does the loss, when
  // `options.mean_loss` asks for its mean over ranks.
  //
  // With `options.check` false the flags are not read, which on a GPU keeps the host from
  // waiting for the step: the update is applied whatever it holds, and a NaN/Inf is
  // remembered on the device until the next checked step reports it. The caller then
  // returns to its last rollback point.
  StepResult step(const Split& batch, const StepOptions& options);

  // A copy, on the device, of the parameters, BN buffers and momentum buffers, and the return to it:
  // the last good state when a deferred check finds that an unchecked step went bad.
  // Both belong right after a checked step, when no unchecked health value is pending.
  void save_rollback_point();
  void rollback();

  // Model parameters and buffers (BN running statistics), optimizer state (momentum buffers)
  // and the gradient exchange's state (PowerSGD's error feedback and Q) as bytes, and back.
  std::map<std::string, std::string> save_state() const;
  void load_state(const std::map<std::string, std::string>& blobs);
  // Whether save_state() differs from rank to rank (PowerSGD's error feedback; local SGD's own
  // parameters and momentum), so that a checkpoint must hold every rank's.
  bool per_rank_state() const { return sync_.per_rank_state(); }
  // CRC-32 of all parameter and buffer bytes: equal only if the model states are bitwise equal.
  std::string parameters_crc32() const;

  // Collective. batch_norm=local: every rank's running statistics become rank 0's, as PyTorch
  // DDP's broadcast_buffers. Each rank moves its own by its own batches; training never reads
  // them, so they need to agree only before they are read or saved: call this before
  // evaluating and before a checkpoint. (DDP broadcasts before every forward instead; as no
  // training forward reads them, the result is the same.) Other modes: nothing to do, sync's
  // statistics are the global batch's on every rank.
  void sync_buffers();
  // Collective. Local SGD: the ranks' parameters become their mean, if local steps (by
  // `steps_done`) may have made them differ; call it before evaluating, so that every rank
  // evaluates one model. Other modes: nothing to do.
  void average_models(int64_t steps_done);
  // Collective. Runs `use` (an evaluation) with one model on every rank: under local SGD, when
  // the replicas may differ, their mean, put back to each rank's own afterwards (training goes on
  // as if nothing happened); otherwise the replica as it is.
  void with_agreed_model(int64_t steps_done, const std::function<void()>& use);

  Model& model() { return model_; }
  const Model& model() const { return model_; }
  const StepTimes& times() const { return times_; }
  void reset_times() { times_ = {}; }

 private:
  // Forward and backward into the buckets; the loss (detached). With `measure_noise`, the
  // small-batch squared gradient norm goes into its extra slot.
  torch::Tensor backward(const Split& batch, bool measure_noise);
  torch::Tensor backward_micro_batches(const Split& batch, bool measure_noise);
  // Unchecked: keep a NaN/Inf of this step for the next check. Checked: read the agreed flags.
  void remember_unchecked_health();
  void read_flags(StepResult& result);
  void broadcast_buffers();
  // Sync batch norm's sum over the replicas, counted as communication.
  void sum_batch_statistics(torch::Tensor& statistics);

  Communicator& comm_;
  ModelConfig model_config_;
  Model model_;
  int micro_batches_;  // train.virtual_ranks
  bool one_pass_;      // the whole batch in one forward and backward (no micro-batches, or sync batch norm)
  torch::optim::SGD optimizer_;
  std::optional<LarsScaling> lars_;  // optim.name=lars: rescales the averaged gradient before SGD's step
  GradientSynchronizer sync_;
  StepTimes times_;
  bool time_steps_;
  // The sum of unchecked steps' health values: NaN/Inf once any of them was.
  torch::Tensor unchecked_health_;
  std::vector<torch::Tensor> rollback_parameters_, rollback_buffers_;
  std::vector<torch::Tensor> step_start_buffers_;  // restored when a checked step is refused
  ExchangeState rollback_exchange_;                 // the gradient exchange's state at the rollback point
  // By the optimizer's state key (a string in LibTorch 1.x, a pointer in 2.x); absent: no buffer yet.
  using StateKey = std::decay_t<decltype(std::declval<torch::optim::SGD&>().state())>::key_type;
  std::map<StateKey, torch::Tensor> rollback_momentum_;
};

}  // namespace ddp
