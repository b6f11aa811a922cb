#include "train/Trainer.h"

#include <fmt/core.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "common/Version.h"
#include "runtime/Device.h"
#include "sync/GradientExchange.h"
#include "train/Evaluate.h"

namespace ddp {
namespace {

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string rng_state() {
  const torch::Tensor state = at::detail::getDefaultCPUGenerator().get_state();
  return std::string(reinterpret_cast<const char*>(state.data_ptr<uint8_t>()), size_t(state.numel()));
}

void restore_rng_state(const std::string& bytes) {
  torch::Tensor state = torch::empty({int64_t(bytes.size())}, torch::kUInt8);
  std::memcpy(state.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(state);
}

// Where a checkpoint keeps rank r's own copy of a blob.
std::string rank_blob(int rank, const std::string& name) { return "rank" + std::to_string(rank) + "/" + name; }

// The blobs rank `rank` resumes from: its own copies where the run keeps state per rank, else rank 0's.
std::map<std::string, std::string> own_blobs(const TrainingCheckpoint& checkpoint, int rank, bool per_rank) {
  std::map<std::string, std::string> blobs;
  for (const auto& [name, bytes] : checkpoint.blobs) {
    if (name.find('/') != std::string::npos) continue;
    const auto own = checkpoint.blobs.find(rank_blob(rank, name));
    if (per_rank && own == checkpoint.blobs.end() && name != "rng")
      throw CheckpointError("checkpoint has no state of rank " + std::to_string(rank) + " for '" + name +
                            "' (written by a run whose ranks kept no state of their own)");
    blobs[name] = own != checkpoint.blobs.end() ? own->second : bytes;
  }
  return blobs;
}

// JSON has no NaN or Inf: a value that is none (an epoch without an applied step) or not finite is null.
nlohmann::json number_or_null(double value) { return std::isfinite(value) ? nlohmann::json(value) : nullptr; }

// The mean over ranks of a 0-dim device tensor, read on the host.
double mean_over_ranks(const torch::Tensor& value, Communicator& comm) {
  torch::Tensor shared = value.to(comm.device(), torch::kFloat64);
  comm.allreduce(shared, ReduceOp::Average);
  return shared.item<double>();
}

}  // namespace

Trainer::Trainer(const Config& config, Communicator& comm, const Dataset& dataset, torch::Device device,
                 TrainerOutputs outputs)
    : config_(config),
      comm_(comm),
      device_(device),
      out_(outputs),
      dataset_name_(dataset.name),
      train_(dataset.train.to(device)),
      test_(dataset.test.to(device)),
      sampler_(train_.size(), comm.size(), comm.rank(), config.train.local_batch, config.train.shuffle,
               uint64_t(config.train.seed), config.train.remainder, int(config.train.virtual_ranks)),
      schedule_(config, train_.size(), sampler_.global_batch(), sampler_.steps_per_epoch()),
      replica_(config, comm, device, schedule_.warmup_steps()),
      progress_(comm.rank() == 0 && config.output.progress, sampler_.steps_per_epoch()),
      // An adaptive rule's gain needs every step's norms; the metric alone, every noise_scale_every.
      noise_every_(schedule_.adaptive() ? 1 : config.metrics.noise_scale_every),
      check_every_(resolve_check_every(config, device)),
      hosts_(comm.allgather(host_name())) {
  // The small batch is one (virtual) rank's micro-batch, the big one the global batch;
  // with a single rank and no virtual ranks they coincide and nothing can be estimated. With
  // sync BN a rank's gradient is its share of the global one (its estimate of |G|^2 goes
  // negative), not a small batch's own gradient: not measured (and AdaScale refused).
  if (noise_every_ > 0 && sampler_.global_batch() > config.train.local_batch &&
      config.model.batch_norm != BatchNorm::Sync)
    noise_scale_.emplace(double(config.train.local_batch), double(sampler_.global_batch()),
                         GradientNoiseScale::decay_per_measurement(config.metrics.noise_scale_decay,
                                                                   sampler_.global_batch(), config.lr.base_batch,
                                                                   noise_every_));
  announce();
}

void Trainer::announce() {
  if (config_.metrics.noise_scale_every > 0 && !noise_scale_)
    progress_.message(config_.model.batch_norm == BatchNorm::Sync
                          ? "gradient noise scale: not measured with model.batch_norm=sync (a rank's gradient is "
                            "its share of the global batch's, not the gradient of a small batch of its own)"
                          : "gradient noise scale: not measured with one rank and no virtual ranks "
                            "(set train.virtual_ranks=2 to measure it on one process)");
  const int virtual_ranks = sampler_.virtual_ranks();
  const std::string virtual_text = virtual_ranks > 1 ? fmt::format(" x {} virtual", virtual_ranks) : "";
  const std::string lars_text =
      config_.optim.name == OptimizerName::Lars ? fmt::format(", LARS (eta {:g})", config_.optim.lars_eta) : "";
  // AdaScale has no peak of its own: its lr is the gain, measured as it goes, times the base schedule.
  const std::string lr_text =
      schedule_.adaptive()
          ? fmt::format("lr = gain r in [1, {:g}] x base lr {:.5g}, until progress reaches {:g} base-batch steps",
                        schedule_.scale(), schedule_.peak(), schedule_.progress_target())
          : fmt::format("peak lr {:.5g}, warmup {} steps", schedule_.peak(), schedule_.warmup_steps());
  progress_.message(fmt::format("ddp-train {}: {} ranks{} ({}, {}), global batch {} = {} x {}{}, lr rule {} -> {}{}, "
                                "{} steps/epoch{}",
                                kVersion, comm_.size(), virtual_text, comm_.backend_name(), device_.str(),
                                sampler_.global_batch(), config_.train.local_batch, comm_.size(), virtual_text,
                                to_string(config_.lr.rule), lr_text, lars_text, sampler_.steps_per_epoch(),
                                sync_text()));
}

// How gradients travel, for the first line: nothing when they travel as plain float32 every step.
std::string Trainer::sync_text() const {
  const SyncOptions sync = sync_options(config_, schedule_.warmup_steps());
  if (!estimates_the_mean(sync)) return "";
  return ", gradients: " + describe(sync) +
         (noise_scale_ ? " (gradient noise scale: measured only while the exact mean gradient is formed)" : "");
}

void Trainer::resume(const TrainingCheckpoint& checkpoint) {
  replica_.load_state(own_blobs(checkpoint, comm_.rank(), replica_.per_rank_state()));
  restore_rng_state(checkpoint.blobs.at("rng"));
  pos_ = position_of(checkpoint, "checkpoint");
  if (noise_scale_) noise_scale_->restore(pos_.noise);
  progress_.message(fmt::format("resumed at step {} (epoch {}, step {} of {})", pos_.step, pos_.epoch + 1,
                                pos_.step_in_epoch, sampler_.steps_per_epoch()));
}

TrainingResult Trainer::run(const std::function<bool()>& stop_requested) {
  const auto wall_start = Clock::now();
  while (!done()) {
    EpochProgress epoch = begin_epoch();
    run_steps(epoch, stop_requested);
    if (outcome_ != Outcome::Completed) {
      end_interrupted_epoch(epoch);
      break;
    }
    end_epoch(epoch);
  }
  return finish(since(wall_start));
}

Trainer::EpochProgress Trainer::begin_epoch() {
  replica_.reset_times();
  EpochProgress e;
  e.epoch = pos_.epoch;
  // A resumed epoch carries on from the checkpoint's position; any other starts at zero.
  e.first_step = e.s = pos_.step_in_epoch;
  e.loss_sum = torch::full({}, pos_.epoch_loss_sum, torch::TensorOptions(torch::kFloat64).device(device_));
  e.counted = pos_.epoch_counted_steps;
  // A resumed epoch may have no step left: show where the schedule stands.
  e.gain = schedule_.gain(gradient_noise());
  e.lr = schedule_.lr(pos_.step > 0 ? pos_.step - 1 : 0, pos_.progress, e.gain);
  e.start = Clock::now();
  e.order = sampler_.indices(e.epoch).to(device_);
  return e;
}

void Trainer::run_steps(EpochProgress& e, const std::function<bool()>& stop_requested) {
  const int64_t steps = sampler_.steps_per_epoch();
  const int64_t every_steps = config_.checkpoint.every_steps, stop_after = config_.train.stop_after_steps;
  const bool deferred = check_every_ > 1;
  if (deferred) keep_rollback_point(e, e.s);
  for (; e.s < steps; ++e.s) {
    if (stop_after > 0 && pos_.step >= stop_after) {
      outcome_ = Outcome::Stopped;
      stop_cause_ = StopCause::StepBudget;
      return;
    }
    const bool checkpoint_due = every_steps > 0 && (pos_.step + 1) % every_steps == 0;
    const StepResult r = take_step(e, checkpoint_due, stop_requested);
    if (r.nonfinite && config_.train.on_nonfinite == NonFinitePolicy::Stop) {
      nonfinite_step_ = pos_.step;
      outcome_ = Outcome::NonFinite;
      if (deferred) roll_back(e);  // some unchecked step since the rollback point went bad and was applied
      return;
    }
    if (r.nonfinite) {
      ++pos_.skipped_steps;
    } else {
      e.loss_sum += r.loss;
      ++e.counted;
      pos_.progress = schedule_.advance(pos_.progress, e.gain);
    }
    ++pos_.step;
    progress_.step(e.epoch, e.s, e.lr);
    // A check vouches for the steps since the previous one: their lines may go out (every
    // step on CPU, where the read is free; every check_every on a GPU, which it synchronises).
    // An adaptive rule folds every step's sample on every rank alike (lr_with_own_noise already
    // did, to set the step's lr; this only catches a step it was not asked for).
    if (r.checked && (schedule_.adaptive() || !step_records_.empty())) flush_measurements();
    // AdaScale's progress may reach its target mid-epoch; the run is then complete.
    if (schedule_.finished(pos_.epoch, pos_.progress)) {
      ++e.s;
      return;
    }
    if (r.stop_requested) {
      ++e.s;
      outcome_ = Outcome::Stopped;
      stop_cause_ = StopCause::Request;
      return;
    }
    // At the epoch's last step the epoch-end evaluation and checkpoint follow anyway.
    if (eval_due(pos_.step) && e.s + 1 < steps) {
      evaluate_now(e, pos_.train_seconds + training_seconds(e));
      if (done()) {  // train.stop_at_target: the run is complete at this step
        ++e.s;
        return;
      }
    }
    if (checkpoint_due && e.s + 1 < steps) save_checkpoint(position_in(e, e.s + 1), e.loss_sum);
    if (deferred && r.checked && e.s + 1 < steps) keep_rollback_point(e, e.s + 1);
  }
}

StepResult Trainer::take_step(EpochProgress& e, bool checkpoint_due, const std::function<bool()>& stop_requested) {
  const int64_t b = sampler_.batch_per_step(), stop_after = config_.train.stop_after_steps;
  const int64_t log_every = config_.metrics.every_steps;
  // The lr the step trains at, under an adaptive rule until its own noise is in (below).
  e.gain = schedule_.gain(gradient_noise());
  e.lr = schedule_.lr(pos_.step, pos_.progress, e.gain);
  StepOptions options;
  options.lr = e.lr;
  // Every rank contributes its loss to the mean; only rank 0 writes it.
  options.mean_loss = log_every > 0 && (pos_.step + 1) % log_every == 0;
  options.step = pos_.step;
  NoiseSample own;  // this step's measurement, kept once it is known to be applied
  if (noise_scale_ && pos_.step % noise_every_ == 0) options.noise = &own;
  // An adaptive rule's gain uses this step's own statistics, measured in its all-reduce.
  bool settled = false;  // the sample was kept (or there was none) before the update
  if (schedule_.adaptive())
    options.lr_after_noise = [&](bool measured) {
      if (measured) noise_samples_.push_back(own);
      settled = true;
      return lr_with_own_noise(e);
    };
  // Whatever follows this step (a checkpoint, the epoch's end, a step budget) must see
  // checked, agreed flags.
  options.check = check_every_ == 1 || (pos_.step + 1) % check_every_ == 0 || e.s + 1 == sampler_.steps_per_epoch() ||
                  checkpoint_due || eval_due(pos_.step + 1) || (stop_after > 0 && pos_.step + 1 >= stop_after);
  options.request_stop = stop_requested && stop_requested();
  comm_.set_step(pos_.step);  // a collective that outlives comm.timeout_s names this step
  const StepResult r = replica_.step(train_.rows(e.order.narrow(0, e.s * b, b)), options);
  if (!settled && !r.nonfinite && r.noise_measured) noise_samples_.push_back(own);
  // A step whose update was not applied (NaN/Inf) gets no line.
  if (options.mean_loss && !r.nonfinite && out_.run_dir)
    step_records_.push_back({pos_.step + 1, e.epoch + 1, e.lr, e.gain, schedule_.advance(pos_.progress, e.gain),
                             r.mean_loss, noise_samples_.size(), r.noise_measured ? own : NoiseSample{}});
  return r;
}

double Trainer::lr_with_own_noise(EpochProgress& e) {
  flush_measurements();  // folds this step's sample in, if it took one (adaptive rules check every step)
  e.gain = schedule_.gain(gradient_noise());
  e.lr = schedule_.lr(pos_.step, pos_.progress, e.gain);
  return e.lr;
}

void Trainer::keep_rollback_point(const EpochProgress& e, int64_t step_in_epoch) {
  replica_.save_rollback_point();
  good_ = {pos_.step,          step_in_epoch,          e.counted,           pos_.progress,
           e.loss_sum.clone(), noise_samples_.size(), step_records_.size()};
}

void Trainer::roll_back(EpochProgress& e) {
  replica_.rollback();
  pos_.step = good_.step;
  pos_.progress = good_.progress;
  e.s = good_.step_in_epoch;
  e.counted = good_.counted;
  e.loss_sum = good_.loss_sum;
  noise_samples_.resize(good_.noise_samples);
  step_records_.resize(good_.step_records);
}

void Trainer::end_epoch(EpochProgress& e) {
  replica_.average_models(pos_.step);  // local SGD: every rank evaluates (and goes on from) their mean
  const double seconds = training_seconds(e);
  add_epoch_times(seconds);
  // One read of the epoch's loss: with steps.jsonl off, the loop's only host synchronisation
  // besides the flag reads. An epoch whose every step was skipped (NaN/Inf) has none: NaN, null
  // in the outputs. Every rank skipped the same steps, so all or none take the collective.
  const double train_loss = e.counted > 0 ? mean_over_ranks(e.loss_sum / double(e.counted), comm_)
                                          : std::numeric_limits<double>::quiet_NaN();
  flush_measurements();
  const Evaluation eval = evaluate_now(e, pos_.train_seconds);  // this epoch's time is in already
  const double throughput = double((e.s - e.first_step) * sampler_.global_batch()) / seconds;
  pos_.final_test_accuracy = eval.accuracy;
  pos_.final_test_loss = eval.loss;
  pos_.final_train_loss = train_loss;
  write_metrics(e, train_loss, eval.loss, eval.accuracy, throughput);
  report_epoch(e, train_loss, eval, throughput);

  const bool whole = e.s == sampler_.steps_per_epoch();
  if (whole) {
    pos_.epoch = e.epoch + 1;
    pos_.step_in_epoch = pos_.epoch_counted_steps = 0;
    pos_.epoch_loss_sum = 0;
  } else {
    // AdaScale's progress ended the run mid-epoch: the position stays inside it, so that a
    // resume with more train.epochs continues this epoch where it stopped.
    pos_.step_in_epoch = e.s;
    pos_.epoch_counted_steps = e.counted;
  }
  const int64_t every_epochs = config_.checkpoint.every_epochs, every_steps = config_.checkpoint.every_steps;
  const bool last = done();
  if ((every_epochs > 0 || every_steps > 0) && (last || (every_epochs > 0 && pos_.epoch % every_epochs == 0) ||
                                                (every_steps > 0 && pos_.step % every_steps == 0)))
    save_checkpoint(pos_, whole ? torch::zeros({}, e.loss_sum.options()) : e.loss_sum);
}

bool Trainer::done() const {
  return schedule_.finished(pos_.epoch, pos_.progress) || (config_.train.stop_at_target && pos_.target_step >= 0);
}

Evaluation Trainer::evaluate_now(EpochProgress& e, double seconds) {
  // The epoch's end right after a mid-epoch evaluation (a run ended at its target): the same model.
  if (last_eval_ && last_eval_->first == pos_.step) return last_eval_->second;
  const auto start = Clock::now();
  flush_measurements();
  replica_.sync_buffers();  // every rank evaluates with rank 0's BN statistics
  Evaluation eval;
  replica_.with_agreed_model(pos_.step, [&] { eval = evaluate(replica_.model(), test_, comm_); });
  const double target = config_.metrics.target_accuracy;
  if (target > 0 && pos_.target_step < 0 && eval.accuracy >= target) {
    pos_.target_step = pos_.step;
    pos_.target_seconds = seconds;
  }
  if (out_.run_dir && config_.metrics.eval_every_steps > 0)
    out_.run_dir->append_eval({{"step", pos_.step},
                               {"epoch", e.epoch + 1},
                               {"samples", pos_.step * sampler_.global_batch()},
                               {"train_seconds", seconds},
                               {"test_loss", eval.loss},
                               {"test_acc", eval.accuracy}});
  e.eval_seconds += since(start);
  last_eval_ = std::make_pair(pos_.step, eval);
  return eval;
}

double Trainer::training_seconds(const EpochProgress& e) const { return since(e.start) - e.eval_seconds; }

bool Trainer::eval_due(int64_t steps_done) const {
  const int64_t every = config_.metrics.eval_every_steps;
  return every > 0 && steps_done > 0 && steps_done % every == 0;
}

void Trainer::end_interrupted_epoch(const EpochProgress& e) {
  const double seconds = training_seconds(e);
  save_checkpoint(position_in(e, e.s), e.loss_sum);
  add_epoch_times(seconds);
}

void Trainer::add_epoch_times(double seconds) {
  pos_.train_seconds += seconds;
  pos_.compute_seconds += replica_.times().compute_seconds;
  pos_.comm_seconds += replica_.times().comm_seconds;
  pos_.comm_bytes += replica_.times().comm_bytes;
}

void Trainer::write_metrics(const EpochProgress& e, double train_loss, double test_loss, double test_accuracy,
                            double samples_per_second) {
  if (!out_.run_dir) return;
  nlohmann::json record = {{"epoch", e.epoch + 1},
                           {"step", pos_.step},
                           {"lr", e.lr},
                           {"train_loss", number_or_null(train_loss)},
                           {"test_loss", number_or_null(test_loss)},
                           {"test_acc", test_accuracy},
                           {"samples_per_second", samples_per_second},
                           {"epoch_seconds", training_seconds(e)},
                           {"compute_seconds", replica_.times().compute_seconds},
                           {"comm_seconds", replica_.times().comm_seconds},
                           {"comm_bytes_per_step", double(replica_.times().comm_bytes) /
                                                       double(std::max<int64_t>(1, e.s - e.first_step))},
                           {"skipped_steps", pos_.skipped_steps}};
  record.update(noise_estimate());
  record.update(pace(e.gain, pos_.progress));
  out_.run_dir->append_metrics(record);
}

void Trainer::report_epoch(const EpochProgress& e, double train_loss, const Evaluation& eval, double throughput) {
  EpochReport report{e.epoch,     config_.train.epochs, e.lr, train_loss, eval.loss, eval.accuracy, throughput,
                     since(e.start), ""};
  if (schedule_.adaptive()) {
    report.epochs = 0;  // the run ends on its progress, after an epoch count not known in advance
    report.note = fmt::format("  gain {:.3g}  progress {:.0f}/{:g}", e.gain, pos_.progress, schedule_.progress_target());
  }
  progress_.epoch_done(report);
}

void Trainer::write_step(const StepRecord& record, double train_loss,
                         const std::optional<GradientNoiseScale::Estimate>& raw) {
  nlohmann::json line = {
      {"step", record.step}, {"epoch", record.epoch}, {"lr", record.lr}, {"train_loss", train_loss}};
  line.update(noise_estimate());
  // The step's own unbiased estimates, unsmoothed: what a mean over the run is to be taken of.
  line["noise_grad_sq_raw"] = raw ? nlohmann::json(raw->grad_squared_norm) : nullptr;
  line["noise_trace_sigma_raw"] = raw ? nlohmann::json(raw->trace_sigma) : nullptr;
  line.update(pace(record.gain, record.progress));
  out_.run_dir->append_step(line);
}

// The smoothed estimates as of now; null where the noise scale is not measured.
nlohmann::json Trainer::noise_estimate() const {
  const bool noise = noise_scale_.has_value();
  const std::optional<double> b_simple = noise ? noise_scale_->b_simple() : std::nullopt;
  return {{"b_simple", b_simple ? nlohmann::json(*b_simple) : nullptr},
          {"noise_grad_sq", noise ? nlohmann::json(noise_scale_->gradient_squared_norm()) : nullptr},
          {"noise_trace_sigma", noise ? nlohmann::json(noise_scale_->trace_sigma()) : nullptr}};
}

// metrics.target_accuracy and when the run first reached it; null where it has no target or never did.
nlohmann::json Trainer::time_to_target() const {
  const double target = config_.metrics.target_accuracy;
  const bool reached = target > 0 && pos_.target_step >= 0;
  return {{"target_accuracy", target > 0 ? nlohmann::json(target) : nullptr},
          {"steps_to_target", reached ? nlohmann::json(pos_.target_step) : nullptr},
          {"samples_to_target", reached ? nlohmann::json(pos_.target_step * sampler_.global_batch()) : nullptr},
          {"seconds_to_target", reached ? nlohmann::json(pos_.target_seconds) : nullptr}};
}

// AdaScale's gain and progress; null under the fixed rules, whose schedule runs on steps.
nlohmann::json Trainer::pace(double gain, double progress) const {
  if (!schedule_.adaptive()) return {{"gain", nullptr}, {"progress", nullptr}};
  return {{"gain", gain}, {"progress", progress}};
}

std::optional<GradientNoise> Trainer::gradient_noise() const {
  if (!noise_scale_ || noise_scale_->state().samples == 0) return std::nullopt;
  return GradientNoise{noise_scale_->gradient_squared_norm(), noise_scale_->trace_sigma()};
}

// One copy from the device for everything pending. The samples are folded in step order
// (identically on every rank: the values are all-reduced), and each line shows the estimate
// as of its step, and its own step's raw estimates where it took a measurement.
void Trainer::flush_measurements() {
  if (noise_samples_.empty() && step_records_.empty()) return;
  std::vector<torch::Tensor> pending;
  const auto add_sample = [&](const NoiseSample& sample) {
    pending.push_back(sample.small_squared_norm);
    pending.push_back(sample.big_squared_norm);
  };
  for (const auto& sample : noise_samples_) add_sample(sample);
  for (const auto& record : step_records_) pending.push_back(record.mean_loss);
  for (const auto& record : step_records_)
    if (record.own_noise.small_squared_norm.defined()) add_sample(record.own_noise);
  const torch::Tensor host = torch::stack(pending).to(torch::kCPU, torch::kFloat64).contiguous();
  const double* noise = host.data_ptr<double>();  // small, big, small, big, ...
  const double* losses = noise + 2 * noise_samples_.size();
  const double* own = losses + step_records_.size();  // the records' own samples, small, big, ...
  size_t folded = 0;
  const auto fold_samples_until = [&](size_t end) {
    for (; folded < end; ++folded) noise_scale_->add(noise[2 * folded], noise[2 * folded + 1]);
  };
  for (size_t i = 0; i < step_records_.size(); ++i) {
    fold_samples_until(step_records_[i].noise_samples);
    std::optional<GradientNoiseScale::Estimate> raw;
    if (step_records_[i].own_noise.small_squared_norm.defined()) {
      raw = noise_scale_->estimate(own[0], own[1]);
      own += 2;
    }
    write_step(step_records_[i], losses[i], raw);
  }
  fold_samples_until(noise_samples_.size());
  noise_samples_.clear();
  step_records_.clear();
}

TrainingPosition Trainer::position_in(const EpochProgress& e, int64_t step_in_epoch) const {
  TrainingPosition at = pos_;
  at.epoch = e.epoch;
  at.step_in_epoch = step_in_epoch;
  at.epoch_counted_steps = e.counted;
  at.train_seconds += training_seconds(e);
  at.compute_seconds += replica_.times().compute_seconds;
  at.comm_seconds += replica_.times().comm_seconds;
  at.comm_bytes += replica_.times().comm_bytes;
  return at;
}

void Trainer::save_checkpoint(TrainingPosition at, const torch::Tensor& loss_sum) {
  flush_measurements();  // a resume from this checkpoint keeps the lines up to its step
  at.epoch_loss_sum = mean_over_ranks(loss_sum, comm_);
  replica_.sync_buffers();
  // State that differs by rank (PowerSGD's error feedback, local SGD's own models) travels to
  // rank 0 as "rank<r>/<blob>"; every rank takes part, whether it writes or not.
  std::map<std::string, std::map<std::string, std::string>> every_rank;
  const std::map<std::string, std::string> own_state =
      replica_.per_rank_state() ? replica_.save_state() : std::map<std::string, std::string>{};
  for (const auto& [name, bytes] : own_state) {
    const std::vector<std::string> all = comm_.allgather(bytes);
    for (size_t r = 0; r < all.size(); ++r) every_rank[name][rank_blob(int(r), name)] = all[r];
  }
  if (!out_.checkpoints) return;
  if (noise_scale_) at.noise = noise_scale_->state();
  const RunIdentity identity{kVersion,
                             comm_.size(),
                             sampler_.virtual_ranks(),
                             config_.train.local_batch,
                             sampler_.global_batch(),
                             sampler_.steps_per_epoch(),
                             train_.size(),
                             dump_config(config_),
                             replica_.parameters_crc32(),
                             describe(config_.model),
                             parameter_shapes(*replica_.model())};
  TrainingCheckpoint checkpoint;
  checkpoint.blobs = replica_.save_state();
  for (const auto& [name, bytes] : own_state) checkpoint.blobs.merge(every_rank[name]);
  checkpoint.blobs["rng"] = rng_state();
  checkpoint.meta = checkpoint_meta(identity, at);
  last_checkpoint_ = out_.checkpoints->save(at.step, checkpoint).string();
}

TrainingResult Trainer::finish(double wall_seconds) {
  TrainingResult result;
  result.outcome = outcome_;
  result.stop_cause = stop_cause_;
  result.step = pos_.step;
  result.nonfinite_step = nonfinite_step_;
  result.check_every = check_every_;
  result.final_test_accuracy = pos_.final_test_accuracy;
  result.final_test_loss = pos_.final_test_loss;
  result.wall_seconds = wall_seconds;
  result.samples_per_second =
      pos_.train_seconds > 0 ? double(pos_.step * sampler_.global_batch()) / pos_.train_seconds : 0.0;
  result.checkpoint = last_checkpoint_;
  if (outcome_ == Outcome::Stopped) return result;  // resumable: no summary yet
  result.summary = summary(result);
  if (out_.run_dir) out_.run_dir->write_summary(result.summary);
  return result;
}

nlohmann::json Trainer::summary(const TrainingResult& result) const {
  nlohmann::json summary = {{"version", kVersion},
                            {"outcome", outcome_ == Outcome::Completed ? "completed" : "nonfinite"},
                            {"dataset", dataset_name_},
                            {"train_samples", train_.size()},
                            {"test_samples", test_.size()},
                            {"world_size", comm_.size()},
                            {"hosts", hosts_},
                            {"backend", comm_.backend_name()},
                            {"device", device_.str()},
                            {"local_batch", config_.train.local_batch},
                            {"virtual_ranks", sampler_.virtual_ranks()},
                            {"simulated_world_size", comm_.size() * sampler_.virtual_ranks()},
                            {"global_batch", sampler_.global_batch()},
                            {"lr_rule", to_string(config_.lr.rule)},
                            {"optimizer", to_string(config_.optim.name)},
                            {"model", describe(config_.model)},
                            {"batch_norm", to_string(config_.model.batch_norm)},
                            {"base_lr", config_.optim.base_lr},
                            {"base_batch", config_.lr.base_batch},
                            {"peak_lr", schedule_.peak()},
                            {"warmup_steps", schedule_.warmup_steps()},
                            {"epochs", config_.train.epochs},
                            {"steps", pos_.step},
                            {"skipped_steps", pos_.skipped_steps},
                            {"seed", config_.train.seed},
                            {"parameters", parameter_count(*replica_.model())},
                            {"parameters_crc32", replica_.parameters_crc32()},
                            {"final_test_accuracy", pos_.final_test_accuracy},
                            {"final_test_loss", number_or_null(pos_.final_test_loss)},
                            {"final_train_loss", number_or_null(pos_.final_train_loss)},
                            {"noise_scale_b_small", config_.train.local_batch},
                            {"samples_per_second", result.samples_per_second},
                            {"train_seconds", pos_.train_seconds},
                            {"compute_seconds", pos_.compute_seconds},
                            {"comm_seconds", pos_.comm_seconds},
                            {"compression", to_string(config_.comm.compression)},
                            {"local_sgd_period", config_.comm.local_sgd_period},
                            {"comm_bytes_per_step", double(pos_.comm_bytes) / double(std::max<int64_t>(1, pos_.step))},
                            {"wall_seconds", result.wall_seconds}};
  summary.update(noise_estimate());
  // The gain as of the end, the progress made, its target, and the mean gain over the applied
  // steps (the batch's effective scale): with `steps`, what AdaScale traded.
  const int64_t applied = pos_.step - pos_.skipped_steps;
  summary.update(pace(schedule_.gain(gradient_noise()), pos_.progress));
  summary["progress_target"] = schedule_.adaptive() ? nlohmann::json(schedule_.progress_target()) : nullptr;
  summary["mean_gain"] =
      schedule_.adaptive() && applied > 0 ? nlohmann::json(pos_.progress / double(applied)) : nullptr;
  summary.update(time_to_target());
  if (outcome_ == Outcome::NonFinite) {
    summary["nonfinite_step"] = nonfinite_step_;
    summary["last_good_step"] = pos_.step;
    summary["check_every"] = check_every_;
    summary["final_test_accuracy"] = nullptr;
    summary["final_test_loss"] = nullptr;
  }
  return summary;
}

}  // namespace ddp
