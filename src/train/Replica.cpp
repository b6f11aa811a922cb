#include "train/Replica.h"

#include <fmt/core.h>

#include <cmath>
#include <sstream>

#include "common/Files.h"

namespace ddp {
namespace {

Model build_model(const Config& config, torch::Device device) {
  Model model = make_model(config.model, uint64_t(config.train.seed));
  model->to(device);
  return model;
}

// Scalars that ride at the end of the gradient all-reduce (averaged like gradients):
//   the local |G_small|^2 (noise scale);
//   health = loss + sum of gradients: NaN/Inf on any rank makes the average NaN/Inf;
//   stop > 0 when any rank asked to stop;
//   the loss, averaged into the mean over all ranks (per-step metrics).
constexpr int64_t kSmallNormSlot = 0;
constexpr int64_t kHealthSlot = 1;
constexpr int64_t kStopSlot = 2;
constexpr int64_t kLossSlot = 3;
static_assert(kLossSlot + 1 == Replica::kExtraSlots, "every slot rides in the exchange");

torch::Device device_of(const Model& model) { return model->parameters().front().device(); }

// Copies `from` into `copies`, allocated on first use and reused after.
void copy_into(std::vector<torch::Tensor>& copies, const std::vector<torch::Tensor>& from) {
  torch::NoGradGuard no_grad;
  if (copies.size() != from.size()) {
    copies.clear();
    for (const auto& t : from) copies.push_back(torch::empty_like(t));
  }
  for (size_t k = 0; k < from.size(); ++k) copies[k].copy_(from[k]);
}

void copy_back(const std::vector<torch::Tensor>& copies, const std::vector<torch::Tensor>& to) {
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < to.size(); ++k) to[k].copy_(copies[k]);
}

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The checkpoint's tensors (`kind`: parameter or buffer) into the model's, in registration order.
void copy_state(const std::vector<torch::Tensor>& source, const std::vector<torch::Tensor>& target,
                const std::string& kind) {
  if (source.size() != target.size()) throw std::runtime_error("checkpoint model has a different " + kind + " count");
  for (size_t k = 0; k < target.size(); ++k) {
    if (!source[k].sizes().equals(target[k].sizes()))
      throw std::runtime_error("checkpoint model " + kind + " " + std::to_string(k) + " has another shape");
    target[k].copy_(source[k]);
  }
}

// The names of the exchange state's tensors in `archive` (as save_state wrote them).
ExchangeState read_exchange_state(torch::serialize::InputArchive& archive, const std::vector<std::string>& names,
                                  torch::Device device) {
  ExchangeState state;
  for (const auto& name : names) {
    torch::Tensor tensor;
    if (archive.try_read(name, tensor)) state[name] = tensor.to(device);
  }
  return state;
}

}  // namespace

Replica::Replica(const Config& config, Communicator& comm, torch::Device device, int64_t warmup_steps)
    : comm_(comm),
      model_config_(config.model),
      model_(build_model(config, device)),
      micro_batches_(int(config.train.virtual_ranks)),
      // Sync batch norm over virtual ranks: the v micro-batches normalise by the statistics of
      // all of them (and of the other processes'), so their forward passes cannot run one after
      // the other. One pass over the whole batch is the same computation: the same global
      // statistics, and a loss that is the mean over v*b samples, the mean of the micro-batch
      // means that v accumulated backward passes would give; the backward sums are over all of
      // them, as v real ranks' all-reduce makes them (see model/SyncBatchNorm.cpp).
      one_pass_(micro_batches_ == 1 || config.model.batch_norm == BatchNorm::Sync),
      optimizer_(model_->parameters(), sgd_options(config)),
      lars_(make_lars(config, model_->parameters())),
      sync_(comm, model_->parameters(), size_t(config.comm.bucket_mb * 1024 * 1024), kExtraSlots,
            sync_options(config, warmup_steps)),
      // Host timestamps only measure work on the CPU; on a GPU they would time kernel launches.
      time_steps_(device.is_cpu()) {
  if (config.model.batch_norm == BatchNorm::Sync)
    model_->set_replica_sum([this](torch::Tensor& t) { sum_batch_statistics(t); });
  sync_.broadcast_parameters(0);
  broadcast_buffers();
}

// Sync batch norm's all-reduces (two a step, inside forward and backward) are exchanges like the
// gradients': their bytes and time are the step's communication. The step times forward and
// backward as compute as a whole, so the time spent here moves from compute to communication.
void Replica::sum_batch_statistics(torch::Tensor& statistics) {
  const auto start = time_steps_ ? Clock::now() : Clock::time_point{};
  comm_.allreduce(statistics, ReduceOp::Sum);
  times_.comm_bytes += int64_t(statistics.nbytes());
  if (time_steps_) {
    const double seconds = seconds_between(start, Clock::now());
    times_.comm_seconds += seconds;
    times_.compute_seconds -= seconds;
  }
}

StepResult Replica::step(const Split& batch, const StepOptions& options) {
  const auto start = time_steps_ ? Clock::now() : Clock::time_point{};
  GradientBuckets& buckets = sync_.buckets();
  sync_.zero_grad();
  // A step that is refused must not move the running statistics either (a NaN batch would
  // poison them); an unchecked step is undone, if need be, by the rollback.
  if (options.check) copy_into(step_start_buffers_, model_->buffers());
  // The noise scale needs the exact mean of the gradients, which compression and local SGD do not form.
  const bool measure_noise = options.noise != nullptr && sync_.exact_mean(options.step);
  const torch::Tensor loss = one_pass_ ? backward(batch, measure_noise) : backward_micro_batches(batch, measure_noise);
  torch::Tensor extras = buckets.extras();
  torch::Tensor health = extras[kHealthSlot];  // written in place: no temporary and copy
  at::add_out(health, loss, buckets.sum());
  if (options.request_stop) extras[kStopSlot].fill_(1.0);
  if (options.mean_loss) extras[kLossSlot].copy_(loss);
  const auto backward_done = time_steps_ ? Clock::now() : Clock::time_point{};
  times_.comm_bytes += sync_.synchronize(options.step);
  // An estimate of the mean can be non-finite where no rank's gradient was (a 16-bit sum past its
  // range): every rank holds the same estimate, so adding 0 x its sum keeps the flag agreed.
  if (sync_.estimated_mean(options.step)) health.add_(buckets.sum(), /*alpha=*/0);
  const auto synced = time_steps_ ? Clock::now() : Clock::time_point{};

  StepResult result;
  result.loss = loss;
  if (options.mean_loss) result.mean_loss = extras[kLossSlot].clone();  // the next step zeroes the slot
  if (measure_noise) {
    options.noise->small_squared_norm = extras[kSmallNormSlot].clone();
    options.noise->big_squared_norm = buckets.squared_norm();
    result.noise_measured = true;
  }
  if (options.check) read_flags(result);
  else remember_unchecked_health();
  if (result.nonfinite) copy_back(step_start_buffers_, model_->buffers());
  if (!result.nonfinite) {
    const double lr = options.lr_after_noise ? options.lr_after_noise(result.noise_measured) : options.lr;
    for (auto& group : optimizer_.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    // After the noise measurement above: it wants the raw gradient, which this rescales in place.
    if (lars_) lars_->rescale_gradients();
    optimizer_.step();
    sync_.commit();
  }
  const auto updated = time_steps_ ? Clock::now() : Clock::time_point{};
  times_.comm_bytes += sync_.after_update(options.step);
  if (time_steps_) {
    const auto end = Clock::now();
    times_.compute_seconds += seconds_between(start, backward_done) + seconds_between(synced, updated);
    times_.comm_seconds += seconds_between(backward_done, synced) + seconds_between(updated, end);
  }
  return result;
}

torch::Tensor Replica::backward(const Split& batch, bool measure_noise) {
  torch::Tensor loss = torch::nn::functional::cross_entropy(model_->forward(batch.images), batch.labels);
  loss.backward();
  GradientBuckets& buckets = sync_.buckets();
  if (measure_noise) buckets.extras()[kSmallNormSlot].copy_(buckets.squared_norm());
  return loss.detach();
}

torch::Tensor Replica::backward_micro_batches(const Split& batch, bool measure_noise) {
  GradientBuckets& buckets = sync_.buckets();
  const int64_t micro = batch.size() / micro_batches_;
  torch::Tensor loss = torch::zeros({}, batch.images.options());
  // Each micro-batch's own gradient is the increment it adds to the buckets; the
  // noise measurement keeps a copy of the buckets to take it.
  std::vector<torch::Tensor> before;
  torch::Tensor small_sum;
  if (measure_noise) {
    for (auto& buffer : buckets.buffers()) before.push_back(buffer.clone());
    small_sum = torch::zeros({}, batch.images.options());
  }
  for (int j = 0; j < micro_batches_; ++j) {
    // Local batch norm: each micro-batch normalises by itself, as its virtual rank would, and
    // only virtual rank 0's moves the running statistics: rank 0's are the ones that count
    // (broadcast_buffers), and no real rank updates them more than once a step.
    const torch::Tensor logits =
        model_->forward(batch.images.narrow(0, j * micro, micro), /*update_running_stats=*/j == 0);
    torch::Tensor part =
        torch::nn::functional::cross_entropy(logits, batch.labels.narrow(0, j * micro, micro)) / double(micro_batches_);
    part.backward();
    loss += part.detach();
    for (size_t b = 0; b < before.size(); ++b) {
      torch::Tensor increment = buckets.buffers()[b] - before[b];
      small_sum += at::dot(increment, increment);
      before[b].copy_(buckets.buffers()[b]);
    }
  }
  // Increments are g_j / v: the mean of |g_j|^2 over j is v * sum |increment|^2.
  if (measure_noise) buckets.extras()[kSmallNormSlot].copy_(small_sum * double(micro_batches_));
  return loss;
}

void Replica::remember_unchecked_health() {
  // One accumulator remembers every unchecked step: adding 0 x health adds 0 for a finite
  // value and NaN for NaN/Inf, so a long run of large finite values cannot overflow into a
  // false alarm.
  torch::Tensor extras = sync_.buckets().extras();
  if (!unchecked_health_.defined()) unchecked_health_ = torch::zeros({}, extras.options());
  unchecked_health_.add_(extras[kHealthSlot], /*alpha=*/0);
}

void Replica::read_flags(StepResult& result) {
  torch::Tensor extras = sync_.buckets().extras();
  if (unchecked_health_.defined()) {
    extras[kHealthSlot].add_(unchecked_health_);
    unchecked_health_.zero_();
  }
  // A CPU tensor is read in place; a GPU one costs one small copy (and a synchronisation).
  const torch::Tensor flags = extras.is_cpu() ? extras : extras.cpu();
  const float* slot = flags.data_ptr<float>();
  result.checked = true;
  result.nonfinite = !std::isfinite(slot[kHealthSlot]);
  result.stop_requested = slot[kStopSlot] > 0.0f;
}

void Replica::save_rollback_point() {
  torch::NoGradGuard no_grad;
  copy_into(rollback_parameters_, model_->parameters());
  copy_into(rollback_buffers_, model_->buffers());
  rollback_exchange_.clear();
  for (const auto& [name, tensor] : sync_.state()) rollback_exchange_[name] = tensor.clone();
  // Buffers exist only once a step with momentum was taken; the copies are reused.
  std::map<StateKey, torch::Tensor> momentum;
  for (auto& [key, state] : optimizer_.state()) {
    const torch::Tensor& buffer = static_cast<torch::optim::SGDParamState&>(*state).momentum_buffer();
    if (!buffer.defined()) continue;
    auto reuse = rollback_momentum_.find(key);
    torch::Tensor copy = reuse != rollback_momentum_.end() ? reuse->second : torch::empty_like(buffer);
    momentum[key] = copy.copy_(buffer);
  }
  rollback_momentum_.swap(momentum);
}

void Replica::rollback() {
  if (rollback_parameters_.empty()) throw std::logic_error("Replica::rollback without a rollback point");
  torch::NoGradGuard no_grad;
  copy_back(rollback_parameters_, model_->parameters());
  copy_back(rollback_buffers_, model_->buffers());
  sync_.set_state(rollback_exchange_);
  auto& states = optimizer_.state();
  for (auto it = states.begin(); it != states.end();) {
    const auto copy = rollback_momentum_.find(it->first);
    if (copy == rollback_momentum_.end()) {
      it = states.erase(it);  // the buffer was born after the rollback point
      continue;
    }
    static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer().copy_(copy->second);
    ++it;
  }
}

std::map<std::string, std::string> Replica::save_state() const {
  std::ostringstream model_bytes, optimizer_bytes;
  torch::serialize::OutputArchive model_archive, optimizer_archive;
  model_->save(model_archive);
  model_archive.save_to(model_bytes);
  optimizer_.save(optimizer_archive);
  optimizer_archive.save_to(optimizer_bytes);
  std::map<std::string, std::string> blobs{{"model", model_bytes.str()}, {"optimizer", optimizer_bytes.str()}};
  const ExchangeState exchange = sync_.state();
  if (!exchange.empty()) {
    torch::serialize::OutputArchive archive;
    for (const auto& [name, tensor] : exchange) archive.write(name, tensor.detach().cpu());
    std::ostringstream bytes;
    archive.save_to(bytes);
    blobs["exchange"] = bytes.str();
  }
  return blobs;
}

void Replica::load_state(const std::map<std::string, std::string>& blobs) {
  for (const char* name : {"model", "optimizer"})
    if (!blobs.count(name)) throw std::runtime_error(std::string("checkpoint lacks the ") + name + " state");
  torch::NoGradGuard no_grad;
  torch::serialize::InputArchive model_archive, optimizer_archive;
  std::istringstream model_bytes(blobs.at("model")), optimizer_bytes(blobs.at("optimizer"));
  model_archive.load_from(model_bytes, torch::kCPU);
  const Model loaded = make_model_shapes(model_config_);
  loaded->load(model_archive);
  copy_state(loaded->parameters(), model_->parameters(), "parameter");
  copy_state(loaded->buffers(), model_->buffers(), "buffer");
  optimizer_archive.load_from(optimizer_bytes, device_of(model_));
  optimizer_.load(optimizer_archive);
  // The exchange's state: the names it has now, each read if the checkpoint holds it (Q only
  // exists once a compressed step was applied); set_state refuses what does not fit.
  const ExchangeState now = sync_.state();
  std::vector<std::string> names;
  for (const auto& entry : now) names.push_back(entry.first);
  names.push_back("q");
  ExchangeState saved;
  if (const auto found = blobs.find("exchange"); found != blobs.end()) {
    torch::serialize::InputArchive archive;
    std::istringstream bytes(found->second);
    archive.load_from(bytes, torch::kCPU);
    saved = read_exchange_state(archive, names, device_of(model_));
  }
  if (!now.empty() || !saved.empty()) sync_.set_state(saved);
}

std::string Replica::parameters_crc32() const {
  uint32_t crc = 0;
  for (const auto& tensors : {model_->parameters(), model_->buffers()}) {
    for (const auto& t : tensors) {
      const torch::Tensor host = t.detach().cpu().contiguous();
      crc = crc32_of(host.data_ptr(), size_t(host.numel() * host.element_size()), crc);
    }
  }
  return fmt::format("{:08x}", crc);
}

void Replica::average_models(int64_t steps_done) {
  const auto start = time_steps_ ? Clock::now() : Clock::time_point{};
  times_.comm_bytes += sync_.average_parameters(steps_done);
  if (time_steps_) times_.comm_seconds += seconds_between(start, Clock::now());
}

void Replica::with_agreed_model(int64_t steps_done, const std::function<void()>& use) {
  sync_.with_mean_parameters(steps_done, use);
}

void Replica::sync_buffers() {
  if (model_->batch_norm() == BatchNorm::Local) broadcast_buffers();
}

void Replica::broadcast_buffers() {
  torch::NoGradGuard no_grad;
  for (auto& buffer : model_->buffers()) comm_.broadcast(buffer, 0);
}

}  // namespace ddp
