#include "train/Replica.h"

namespace ddp {
namespace {

SimpleNN build_model(const Config& config, torch::Device device) {
  SimpleNN model = make_simple_nn(uint64_t(config.train.seed));
  model->to(device);
  return model;
}

torch::optim::SGDOptions sgd_options(const Config& config) {
  // torch::optim::SGD applies lr outside the momentum buffer (v = m*v + g; p -= lr*v),
  // so changing lr during warmup needs no momentum correction (Goyal et al., section 3).
  return torch::optim::SGDOptions(config.optim.base_lr)
      .momentum(config.optim.momentum)
      .weight_decay(config.optim.weight_decay)
      .nesterov(config.optim.nesterov);
}

// Slot 0 of the extras that ride in the gradient all-reduce: the local |G_small|^2.
constexpr int64_t kExtraSlots = 1;
constexpr int64_t kSmallNormSlot = 0;

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Replica::Replica(const Config& config, Communicator& comm, torch::Device device)
    : model_(build_model(config, device)),
      optimizer_(model_->parameters(), sgd_options(config)),
      sync_(comm, model_->parameters(), size_t(config.comm.bucket_mb * 1024 * 1024), kExtraSlots),
      // Host timestamps only measure work on the CPU; on a GPU they would time kernel launches.
      time_steps_(device.is_cpu()) {
  sync_.broadcast_parameters(0);
}

torch::Tensor Replica::step(const torch::Tensor& images, const torch::Tensor& labels, double lr,
                            int micro_batches, NoiseSample* noise) {
  const auto start = time_steps_ ? Clock::now() : Clock::time_point{};
  GradientBuckets& buckets = sync_.buckets();
  sync_.zero_grad();
  torch::Tensor loss;
  if (micro_batches == 1) {
    loss = torch::nn::functional::cross_entropy(model_->forward(images), labels);
    loss.backward();
    if (noise) buckets.extras()[kSmallNormSlot].copy_(buckets.squared_norm());
  } else {
    const int64_t micro = images.size(0) / micro_batches;
    loss = torch::zeros({}, images.options());
    // Each micro-batch's own gradient is the increment it adds to the buckets; the
    // noise measurement keeps a copy of the buckets to take it.
    std::vector<torch::Tensor> before;
    torch::Tensor small_sum;
    if (noise) {
      for (auto& buffer : buckets.buffers()) before.push_back(buffer.clone());
      small_sum = torch::zeros({}, images.options());
    }
    for (int j = 0; j < micro_batches; ++j) {
      torch::Tensor part = torch::nn::functional::cross_entropy(model_->forward(images.narrow(0, j * micro, micro)),
                                                                labels.narrow(0, j * micro, micro)) /
                           double(micro_batches);
      part.backward();
      loss += part.detach();
      if (noise) {
        for (size_t b = 0; b < before.size(); ++b) {
          torch::Tensor increment = buckets.buffers()[b] - before[b];
          small_sum += at::dot(increment, increment);
          before[b].copy_(buckets.buffers()[b]);
        }
      }
    }
    // Increments are g_j / v: the mean of |g_j|^2 over j is v * sum |increment|^2.
    if (noise) buckets.extras()[kSmallNormSlot].copy_(small_sum * double(micro_batches));
  }
  const auto backward_done = time_steps_ ? Clock::now() : Clock::time_point{};
  sync_.synchronize();
  const auto synced = time_steps_ ? Clock::now() : Clock::time_point{};
  if (noise) {
    noise->small_squared_norm = buckets.extras()[kSmallNormSlot].clone();
    noise->big_squared_norm = buckets.squared_norm();
  }
  for (auto& group : optimizer_.param_groups())
    static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
  optimizer_.step();
  if (time_steps_) {
    const auto end = Clock::now();
    times_.compute_seconds += seconds_between(start, backward_done) + seconds_between(synced, end);
    times_.comm_seconds += seconds_between(backward_done, synced);
  }
  return loss.detach();
}

}  // namespace ddp
