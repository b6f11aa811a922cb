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

namespace ddp {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

torch::Device resolve_device(Device requested) {
  const bool cuda = torch::cuda::is_available();
  if (requested == Device::Cuda && !cuda)
    throw InputError("device: cuda requested, but no GPU is visible or this LibTorch was built without CUDA");
  return (requested == Device::Cuda || (requested == Device::Auto && cuda)) ? torch::Device(torch::kCUDA)
                                                                            : torch::Device(torch::kCPU);
}

void set_compute_threads(int threads) {
  torch::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto openblas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    openblas(threads);
}

Trainer::Trainer(const Config& config, Communicator& comm, Dataset dataset, torch::Device device,
                 RunDirectory* run_dir)
    : config_(config), comm_(comm), dataset_(std::move(dataset)), device_(device), run_dir_(run_dir) {}

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
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < config_.train.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    replica.reset_times();
    const torch::Tensor order = sampler.indices(epoch).to(device_);
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
    double lr = schedule.at(step);
    std::vector<NoiseSample> noise_samples;
    for (int64_t s = 0; s < steps; ++s, ++step) {
      lr = schedule.at(step);
      const torch::Tensor batch = order.narrow(0, s * batch_per_step, batch_per_step);
      NoiseSample* noise = nullptr;
      if (noise_scale && step % noise_every == 0) noise = &noise_samples.emplace_back();
      const torch::Tensor loss = replica.step(train.images.index_select(0, batch),
                                              train.labels.index_select(0, batch), lr, virtual_ranks, noise);
      loss_sum += loss;
      progress.step(epoch, s, lr);
    }
    // One read of the loss per epoch: the only host synchronisation of the loop.
    torch::Tensor mean_loss = (loss_sum / double(steps)).to(comm_.device());
    comm_.allreduce(mean_loss, ReduceOp::Average);
    const double train_loss = mean_loss.item<double>();
    const double epoch_train_seconds = since(epoch_start);
    train_seconds += epoch_train_seconds;
    compute_seconds += replica.times().compute_seconds;
    comm_seconds += replica.times().comm_seconds;

    nlohmann::json b_simple = nullptr;
    if (noise_scale && !noise_samples.empty()) {
      std::vector<torch::Tensor> small, big;
      for (const auto& sample : noise_samples) small.push_back(sample.small_squared_norm), big.push_back(sample.big_squared_norm);
      const torch::Tensor small_cpu = torch::stack(small).to(torch::kCPU, torch::kFloat64);
      const torch::Tensor big_cpu = torch::stack(big).to(torch::kCPU, torch::kFloat64);
      for (int64_t i = 0; i < small_cpu.size(0); ++i)
        noise_scale->add(small_cpu[i].item<double>(), big_cpu[i].item<double>());
      if (auto value = noise_scale->b_simple()) b_simple = *value;
    }
    result.final_b_simple = b_simple;

    const Evaluation eval = evaluate(replica.model(), test, comm_);
    const double throughput = double(steps * global_batch) / epoch_train_seconds;
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
                                {"b_simple", b_simple},
                                {"noise_grad_sq", noise_scale ? nlohmann::json(noise_scale->gradient_squared_norm()) : nullptr},
                                {"noise_trace_sigma", noise_scale ? nlohmann::json(noise_scale->trace_sigma()) : nullptr}});
    }
    progress.epoch_done({epoch, config_.train.epochs, lr, train_loss, eval.loss, eval.accuracy, throughput,
                         since(epoch_start)});
    result.final_test_accuracy = eval.accuracy;
    result.final_test_loss = eval.loss;
    result.final_train_loss = train_loss;
  }
  result.samples_per_second = double(step * global_batch) / train_seconds;
  result.wall_seconds = since(wall_start);
  result.summary = {{"version", kVersion},
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
                    {"seed", config_.train.seed},
                    {"parameters", parameter_count(*replica.model())},
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
  if (run_dir_) run_dir_->write_summary(result.summary);
  return result;
}

}  // namespace ddp
