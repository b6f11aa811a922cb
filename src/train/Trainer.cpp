#include "train/Trainer.h"

#include <dlfcn.h>
#include <fmt/core.h>

#include <chrono>

#include "common/Errors.h"
#include "common/Version.h"
#include "data/DistributedSampler.h"
#include "metrics/NoiseScale.h"
#include "metrics/Progress.h"
#include "schedule/LrSchedule.h"
#include "train/Evaluate.h"
#include "train/Replica.h"
#include "train/StopSignal.h"

namespace ddp {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Keys a resumed run may change without changing the experiment it continues.
bool may_change_on_resume(const std::string& key) {
  for (const char* prefix : {"output.", "checkpoint.", "comm.", "runtime.", "metrics."})
    if (key.rfind(prefix, 0) == 0) return true;
  return key == "train.epochs" || key == "train.virtual_ranks" || key == "train.stop_after_steps" ||
         key == "train.check_every" ||
         key == "device" || key == "data.dir";
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

}  // namespace

torch::Device resolve_device(Device requested) {
  const bool cuda = torch::cuda::is_available();
  if (requested == Device::Cuda && !cuda)
    throw InputError("device: cuda requested, but no GPU is visible or this LibTorch was built without CUDA");
  return (requested == Device::Cuda || (requested == Device::Auto && cuda)) ? torch::Device(torch::kCUDA)
                                                                            : torch::Device(torch::kCPU);
}

int64_t resolve_check_every(const Config& config, torch::Device device) {
  if (config.train.check_every > 0) return config.train.check_every;
  if (config.train.on_nonfinite == NonFinitePolicy::Skip) return 1;
  return device.is_cuda() ? 50 : 1;
}

void set_compute_threads(int threads) {
  torch::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto openblas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    openblas(threads);
}

void check_resume_compatible(const TrainingCheckpoint& checkpoint, const Config& config, int world_size,
                             int64_t train_samples, const std::string& source) {
  const auto& meta = checkpoint.meta;
  try {
    const int64_t was_world = meta.at("world_size"), was_virtual = meta.at("virtual_ranks");
    const int64_t was_local = meta.at("local_batch");
    const int64_t simulated = int64_t(world_size) * config.train.virtual_ranks;
    if (was_local != config.train.local_batch || was_world * was_virtual != simulated) {
      throw InputError(fmt::format(
          "{}: written by {} ranks x {} virtual x local batch {} (global batch {}); this run is {} ranks x {} "
          "virtual x {} (global batch {}). Resuming would silently change the experiment: keep the global batch, "
          "e.g. train.virtual_ranks={} with {} ranks",
          source, was_world, was_virtual, was_local, was_world * was_virtual * was_local, world_size,
          config.train.virtual_ranks, config.train.local_batch, simulated * config.train.local_batch,
          was_world * was_virtual % world_size == 0 ? was_world * was_virtual / world_size : was_virtual,
          was_world * was_virtual % world_size == 0 ? world_size : was_world));
    }
    // The sample order and the position in the epoch only mean the same thing on the same data.
    if (meta.at("train_samples").get<int64_t>() != train_samples)
      throw InputError(fmt::format("{}: written for a training set of {} samples; data.dir now holds {}", source,
                                   meta.at("train_samples").get<int64_t>(), train_samples));
    const Config saved = parse_config(meta.at("config").get<std::string>(), source + " (saved config)");
    const auto before = config_entries(saved), now = config_entries(config);
    for (size_t i = 0; i < before.size(); ++i) {
      if (before[i].second != now[i].second && !may_change_on_resume(before[i].first))
        throw InputError(fmt::format("{}: key '{}' was {} when the checkpoint was written and is {} now; resuming "
                                     "would change the experiment (start a new output.dir instead)",
                                     source, before[i].first, before[i].second, now[i].second));
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(source + ": checkpoint metadata incomplete: " + e.what());
  }
}

Trainer::Trainer(const Config& config, Communicator& comm, Dataset dataset, torch::Device device,
                 RunDirectory* run_dir, CheckpointStore* checkpoints, std::optional<TrainingCheckpoint> resume_from)
    : config_(config),
      comm_(comm),
      dataset_(std::move(dataset)),
      device_(device),
      run_dir_(run_dir),
      checkpoints_(checkpoints),
      resume_from_(std::move(resume_from)) {}

TrainingResult Trainer::run() {
  const auto wall_start = Clock::now();
  const int world = comm_.size();
  const int64_t local_batch = config_.train.local_batch;
  const int virtual_ranks = int(config_.train.virtual_ranks);

  // The whole dataset moves to the device once; a step only gathers rows by index.
  const Split train = dataset_.train.to(device_);
  const Split test = dataset_.test.to(device_);
  DistributedSampler sampler(train.size(), world, comm_.rank(), local_batch, config_.train.shuffle,
                             uint64_t(config_.train.seed), config_.train.remainder, virtual_ranks);
  const int64_t steps = sampler.steps_per_epoch();
  const int64_t batch_per_step = sampler.batch_per_step();
  const int64_t global_batch = sampler.global_batch();
  LrSchedule schedule(config_, global_batch, steps);
  Replica replica(config_, comm_, device_);
  const auto device_options = torch::TensorOptions().dtype(torch::kFloat64).device(device_);

  Progress progress(comm_.rank() == 0 && config_.output.progress, steps);
  // The small batch is one (virtual) rank's micro-batch, the big one the global batch;
  // with a single rank and no virtual ranks they coincide and nothing can be estimated.
  std::optional<GradientNoiseScale> noise_scale;
  const int64_t noise_every = config_.metrics.noise_scale_every;
  if (noise_every > 0 && global_batch > local_batch) {
    noise_scale.emplace(double(local_batch), double(global_batch), config_.metrics.noise_scale_decay);
  } else if (noise_every > 0) {
    progress.message("gradient noise scale: not measured with one rank and no virtual ranks "
                     "(set train.virtual_ranks=2 to measure it on one process)");
  }
  const std::string virtual_text = virtual_ranks > 1 ? fmt::format(" x {} virtual", virtual_ranks) : "";
  progress.message(fmt::format("ddp-train {}: {} ranks{} ({}, {}), global batch {} = {} x {}{}, lr rule {} -> peak lr "
                               "{:.5g}, warmup {} steps, {} steps/epoch",
                               kVersion, world, virtual_text, comm_.backend_name(), device_.str(), global_batch,
                               local_batch, world, virtual_text, to_string(config_.lr.rule), schedule.peak(),
                               schedule.warmup_steps(), steps));

  TrainingResult result;
  double train_seconds = 0, compute_seconds = 0, comm_seconds = 0;
  int64_t step = 0, start_epoch = 0, start_in_epoch = 0, skipped_steps = 0;
  double carried_loss = 0;  // the epoch's loss so far (averaged over ranks) when resuming mid-epoch
  int64_t carried_counted = 0;
  if (resume_from_) {
    const auto& meta = resume_from_->meta;
    replica.load_state(resume_from_->blobs);
    restore_rng_state(resume_from_->blobs.at("rng"));
    step = meta.at("step");
    start_epoch = meta.at("epoch");
    start_in_epoch = meta.at("step_in_epoch");
    carried_loss = meta.at("epoch_loss_sum");
    carried_counted = meta.at("epoch_counted_steps");
    skipped_steps = meta.at("skipped_steps");
    train_seconds = meta.at("train_seconds");
    compute_seconds = meta.at("compute_seconds");
    comm_seconds = meta.at("comm_seconds");
    if (noise_scale && meta.contains("noise")) {
      const auto& n = meta.at("noise");
      noise_scale->restore({n.at("g2_ema"), n.at("s_ema"), n.at("weight"), n.at("samples")});
    }
    result.final_test_accuracy = meta.at("final_test_accuracy");
    result.final_test_loss = meta.at("final_test_loss");
    result.final_train_loss = meta.at("final_train_loss");
    progress.message(fmt::format("resumed at step {} (epoch {}, step {} of {})", step, start_epoch + 1,
                                 start_in_epoch, steps));
  }

  std::vector<NoiseSample> noise_samples;
  // Folds pending noise measurements into the estimator (identical on every rank: the
  // values are all-reduced), reading the device once.
  auto flush_noise = [&]() {
    if (!noise_scale || noise_samples.empty()) return;
    std::vector<torch::Tensor> small, big;
    for (const auto& sample : noise_samples)
      small.push_back(sample.small_squared_norm), big.push_back(sample.big_squared_norm);
    const torch::Tensor small_cpu = torch::stack(small).to(torch::kCPU, torch::kFloat64);
    const torch::Tensor big_cpu = torch::stack(big).to(torch::kCPU, torch::kFloat64);
    const auto small_at = small_cpu.accessor<double, 1>(), big_at = big_cpu.accessor<double, 1>();
    for (int64_t i = 0; i < small_cpu.size(0); ++i) noise_scale->add(small_at[i], big_at[i]);
    noise_samples.clear();
  };

  // Every rank calls this at the same step (decisions are agreed); rank 0 writes.
  // `epoch_seconds`: time spent so far in an unfinished epoch, not yet in train_seconds.
  auto save_checkpoint = [&](int64_t epoch, int64_t step_in_epoch, const torch::Tensor& loss_sum, int64_t counted,
                             double epoch_seconds, const StepTimes& epoch_times) {
    flush_noise();
    torch::Tensor partial = loss_sum.to(comm_.device());
    comm_.allreduce(partial, ReduceOp::Average);
    const double epoch_loss_sum = partial.item<double>();
    if (!checkpoints_) return;
    TrainingCheckpoint checkpoint;
    checkpoint.blobs = replica.save_state();
    checkpoint.blobs["rng"] = rng_state();
    checkpoint.meta = {{"version", kVersion},
                       {"step", step},
                       {"epoch", epoch},
                       {"step_in_epoch", step_in_epoch},
                       {"steps_per_epoch", steps},
                       {"train_samples", train.size()},
                       {"world_size", world},
                       {"virtual_ranks", virtual_ranks},
                       {"local_batch", local_batch},
                       {"global_batch", global_batch},
                       {"config", dump_config(config_)},
                       {"epoch_loss_sum", epoch_loss_sum},
                       {"epoch_counted_steps", counted},
                       {"skipped_steps", skipped_steps},
                       {"train_seconds", train_seconds + epoch_seconds},
                       {"compute_seconds", compute_seconds + epoch_times.compute_seconds},
                       {"comm_seconds", comm_seconds + epoch_times.comm_seconds},
                       {"final_test_accuracy", result.final_test_accuracy},
                       {"final_test_loss", result.final_test_loss},
                       {"final_train_loss", result.final_train_loss},
                       {"parameters_crc32", replica.parameters_crc32()}};
    if (noise_scale) {
      const auto n = noise_scale->state();
      checkpoint.meta["noise"] = {{"g2_ema", n.g2_ema}, {"s_ema", n.s_ema}, {"weight", n.weight}, {"samples", n.samples}};
    }
    result.checkpoint = checkpoints_->save(step, checkpoint).string();
  };

  const int64_t every_steps = config_.checkpoint.every_steps, every_epochs = config_.checkpoint.every_epochs;
  const int64_t stop_after = config_.train.stop_after_steps;
  const int64_t check_every = resolve_check_every(config_, device_);
  const bool deferred = check_every > 1;
  result.check_every = check_every;
  // With deferred checks, where a NaN found at a check sends the loop back to.
  struct RollbackPoint {
    int64_t step, step_in_epoch, counted;
    torch::Tensor loss_sum;
    size_t noise_samples;
  } good{};
  for (int64_t epoch = start_epoch; epoch < config_.train.epochs && result.outcome == Outcome::Completed; ++epoch) {
    const auto epoch_start = Clock::now();
    replica.reset_times();
    const torch::Tensor order = sampler.indices(epoch).to(device_);
    const bool resumed_epoch = epoch == start_epoch && resume_from_;
    torch::Tensor loss_sum = torch::full({}, resumed_epoch ? carried_loss : 0.0, device_options);
    int64_t counted = resumed_epoch ? carried_counted : 0;  // steps whose update was applied
    // The lr of the last step taken, for the metrics (a resumed epoch may have none left).
    double lr = schedule.at(step > 0 ? step - 1 : 0);
    int64_t s = resumed_epoch ? start_in_epoch : 0;
    auto keep_rollback_point = [&](int64_t next_step_in_epoch) {
      replica.save_rollback_point();
      good = {step, next_step_in_epoch, counted, loss_sum.clone(), noise_samples.size()};
    };
    if (deferred) keep_rollback_point(s);
    for (; s < steps; ++s) {
      if (stop_after > 0 && step >= stop_after) {
        result.outcome = Outcome::Stopped;
        break;
      }
      lr = schedule.at(step);
      const torch::Tensor batch = order.narrow(0, s * batch_per_step, batch_per_step);
      NoiseSample* noise = nullptr;
      if (noise_scale && step % noise_every == 0) noise = &noise_samples.emplace_back();
      // Whatever follows this step (a checkpoint, the epoch's end, a step budget) must see
      // checked, agreed flags.
      const bool checkpoint_due = every_steps > 0 && (step + 1) % every_steps == 0;
      const bool check = !deferred || (step + 1) % check_every == 0 || s + 1 == steps || checkpoint_due ||
                         (stop_after > 0 && step + 1 >= stop_after);
      const StepResult r = replica.step(train.images.index_select(0, batch), train.labels.index_select(0, batch), lr,
                                        virtual_ranks, noise, stop_signal_received(), check);
      if (r.nonfinite) {
        if (noise) noise_samples.pop_back();
        if (config_.train.on_nonfinite == NonFinitePolicy::Stop) {
          result.nonfinite_step = step;
          result.outcome = Outcome::NonFinite;
          if (deferred) {
            // Some unchecked step since the rollback point went bad and was applied.
            replica.rollback();
            step = good.step;
            s = good.step_in_epoch;
            counted = good.counted;
            loss_sum = good.loss_sum;
            noise_samples.resize(good.noise_samples);
          }
          break;
        }
        ++skipped_steps;
      } else {
        loss_sum += r.loss;
        ++counted;
      }
      ++step;
      progress.step(epoch, s, lr);
      if (r.stop_requested) {
        ++s;
        result.outcome = Outcome::Stopped;
        break;
      }
      if (checkpoint_due && s + 1 < steps) save_checkpoint(epoch, s + 1, loss_sum, counted, since(epoch_start), replica.times());
      if (deferred && r.checked && s + 1 < steps) keep_rollback_point(s + 1);
    }
    const double epoch_train_seconds = since(epoch_start);
    if (result.outcome != Outcome::Completed) {
      save_checkpoint(epoch, s, loss_sum, counted, epoch_train_seconds, replica.times());
      train_seconds += epoch_train_seconds;
      compute_seconds += replica.times().compute_seconds;
      comm_seconds += replica.times().comm_seconds;
      break;
    }
    train_seconds += epoch_train_seconds;
    compute_seconds += replica.times().compute_seconds;
    comm_seconds += replica.times().comm_seconds;

    // One read of the loss per epoch: the only host synchronisation of the loop.
    torch::Tensor mean_loss = (loss_sum / double(std::max<int64_t>(counted, 1))).to(comm_.device());
    comm_.allreduce(mean_loss, ReduceOp::Average);
    const double train_loss = mean_loss.item<double>();
    flush_noise();
    nlohmann::json b_simple = nullptr;
    if (noise_scale)
      if (auto value = noise_scale->b_simple()) b_simple = *value;
    result.final_b_simple = b_simple;

    const Evaluation eval = evaluate(replica.model(), test, comm_);
    const double throughput = double((steps - (resumed_epoch ? start_in_epoch : 0)) * global_batch) / epoch_train_seconds;
    result.final_test_accuracy = eval.accuracy;
    result.final_test_loss = eval.loss;
    result.final_train_loss = train_loss;
    if (run_dir_) {
      run_dir_->append_metrics({{"epoch", epoch + 1},
                                {"step", step},
                                {"lr", lr},
                                {"train_loss", train_loss},
                                {"test_loss", eval.loss},
                                {"test_acc", eval.accuracy},
                                {"samples_per_second", throughput},
                                {"epoch_seconds", since(epoch_start)},
                                {"compute_seconds", replica.times().compute_seconds},
                                {"comm_seconds", replica.times().comm_seconds},
                                {"skipped_steps", skipped_steps},
                                {"b_simple", b_simple},
                                {"noise_grad_sq", noise_scale ? nlohmann::json(noise_scale->gradient_squared_norm()) : nullptr},
                                {"noise_trace_sigma", noise_scale ? nlohmann::json(noise_scale->trace_sigma()) : nullptr}});
    }
    progress.epoch_done({epoch, config_.train.epochs, lr, train_loss, eval.loss, eval.accuracy, throughput,
                         since(epoch_start)});
    const bool last = epoch + 1 == config_.train.epochs;
    const bool checkpointing = every_epochs > 0 || every_steps > 0;
    if (checkpointing && (last || (every_epochs > 0 && (epoch + 1) % every_epochs == 0) ||
                          (every_steps > 0 && step % every_steps == 0)))
      save_checkpoint(epoch + 1, 0, torch::zeros({}, device_options), 0, 0.0, StepTimes{});
  }
  result.step = step;
  result.wall_seconds = since(wall_start);
  result.samples_per_second = train_seconds > 0 ? double(step * global_batch) / train_seconds : 0.0;
  if (result.outcome == Outcome::Stopped) return result;  // resumable: no summary yet

  result.summary = {{"version", kVersion},
                    {"outcome", result.outcome == Outcome::Completed ? "completed" : "nonfinite"},
                    {"dataset", dataset_.name},
                    {"train_samples", train.size()},
                    {"test_samples", test.size()},
                    {"world_size", world},
                    {"backend", comm_.backend_name()},
                    {"device", device_.str()},
                    {"local_batch", local_batch},
                    {"virtual_ranks", virtual_ranks},
                    {"simulated_world_size", world * virtual_ranks},
                    {"global_batch", global_batch},
                    {"lr_rule", to_string(config_.lr.rule)},
                    {"base_lr", config_.optim.base_lr},
                    {"base_batch", config_.lr.base_batch},
                    {"peak_lr", schedule.peak()},
                    {"warmup_steps", schedule.warmup_steps()},
                    {"epochs", config_.train.epochs},
                    {"steps", step},
                    {"skipped_steps", skipped_steps},
                    {"seed", config_.train.seed},
                    {"parameters", parameter_count(*replica.model())},
                    {"parameters_crc32", replica.parameters_crc32()},
                    {"final_test_accuracy", result.final_test_accuracy},
                    {"final_test_loss", result.final_test_loss},
                    {"final_train_loss", result.final_train_loss},
                    {"b_simple", result.final_b_simple},
                    {"noise_scale_b_small", local_batch},
                    {"samples_per_second", result.samples_per_second},
                    {"train_seconds", train_seconds},
                    {"compute_seconds", compute_seconds},
                    {"comm_seconds", comm_seconds},
                    {"wall_seconds", result.wall_seconds}};
  if (result.outcome == Outcome::NonFinite) {
    result.summary["nonfinite_step"] = result.nonfinite_step;
    result.summary["last_good_step"] = step;
    result.summary["check_every"] = check_every;
    result.summary["final_test_accuracy"] = nullptr;
    result.summary["final_test_loss"] = nullptr;
  }
  if (run_dir_) run_dir_->write_summary(result.summary);
  return result;
}

}  // namespace ddp
