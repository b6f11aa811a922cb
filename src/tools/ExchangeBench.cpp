#include "tools/ExchangeBench.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>

#include "common/Errors.h"
#include "config/Config.h"
#include "model/Model.h"
#include "sync/GradientSynchronizer.h"
#include "train/Replica.h"

namespace ddp::tools {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kExtraSlots = Replica::kExtraSlots;  // the flags travel with every exchange

// One mode's model, its gradients (a real backward pass) and its synchroniser.
struct Exchanger {
  ExchangeMode mode;
  Model model;
  std::unique_ptr<GradientSynchronizer> sync;
  std::vector<torch::Tensor> own;  // this rank's gradients, restored before every call
  std::vector<double> seconds;
  int64_t bytes = 0;
};

SyncOptions options_of(const ExchangeMode& mode) {
  SyncOptions options;
  options.compression_start_step = 0;
  if (mode.name == "fp16") options.compression = Compression::Fp16;
  if (mode.name == "bf16") options.compression = Compression::Bf16;
  if (mode.name.rfind("powersgd", 0) == 0) {
    options.compression = Compression::PowerSgd;
    const auto colon = mode.name.find(':');
    options.powersgd_rank = colon == std::string::npos ? 2 : std::stoll(mode.name.substr(colon + 1));
  }
  return options;
}

// The gradients of one batch of 64 random images with random labels, different on every rank.
std::vector<torch::Tensor> gradients_of(Model& model, int rank) {
  torch::manual_seed(uint64_t(100 + rank));
  const torch::Tensor images = torch::rand({64, 784}), labels = torch::randint(10, {64}, torch::kInt64);
  torch::nn::functional::cross_entropy(model->forward(images), labels).backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
  return grads;
}

void restore(Exchanger& e) {
  torch::NoGradGuard no_grad;
  const auto parameters = e.model->parameters();
  for (size_t k = 0; k < parameters.size(); ++k) parameters[k].mutable_grad().copy_(e.own[k]);
}

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// ||result - exact mean|| / ||exact mean|| over all gradients.
double relative_error(Exchanger& e, const std::vector<torch::Tensor>& mean) {
  double diff = 0, norm = 0;
  const auto parameters = e.model->parameters();
  for (size_t k = 0; k < parameters.size(); ++k) {
    diff += (parameters[k].grad() - mean[k]).square().sum().item<double>();
    norm += mean[k].square().sum().item<double>();
  }
  return std::sqrt(diff / norm);
}

}  // namespace

std::vector<ExchangeMode> parse_exchange_modes(const std::string& list) {
  std::vector<ExchangeMode> modes;
  std::istringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    const bool powersgd = item.rfind("powersgd", 0) == 0;
    const std::string rank = powersgd && item.size() > 9 && item[8] == ':' ? item.substr(9) : "2";
    const bool rank_ok = !rank.empty() && rank.size() < 5 && std::all_of(rank.begin(), rank.end(), ::isdigit) &&
                         std::stoi(rank) > 0;
    if (!(item == "none" || item == "fp16" || item == "bf16" || (powersgd && (item == "powersgd" || rank_ok))))
      throw InputError("--compression: '" + item + "' is not none, fp16, bf16, powersgd or powersgd:RANK");
    modes.push_back({powersgd ? "powersgd:" + rank : item, powersgd ? "powersgd r" + rank : item});
  }
  if (modes.empty()) throw InputError("--compression: no mode given");
  return modes;
}

void run_exchange_benchmark(Communicator& comm, const std::vector<ExchangeMode>& modes, int iters, int warmup,
                            const ModelConfig& model) {
  const int n = comm.size();
  std::vector<Exchanger> exchangers(modes.size());
  for (size_t m = 0; m < modes.size(); ++m) {
    Exchanger& e = exchangers[m];
    e.mode = modes[m];
    e.model = make_model(model, 1);
    e.own = gradients_of(e.model, comm.rank());
    e.sync = std::make_unique<GradientSynchronizer>(comm, e.model->parameters(), size_t(25) << 20, kExtraSlots,
                                                    options_of(e.mode));
    e.own = gradients_of(e.model, comm.rank());  // again: the synchroniser moved .grad() into its buckets
  }
  // The exact mean, for the check.
  std::vector<torch::Tensor> mean;
  for (const auto& g : exchangers[0].own) {
    mean.push_back(g.clone());
    comm.allreduce(mean.back(), ReduceOp::Average);
  }
  // Rounds of back-to-back blocks, one block per mode, as a training run's consecutive steps
  // send them (a capped link's token bucket is drained, as in training, not refilled between
  // calls); the blocks alternate, so every mode sees the same moments of a shared machine.
  const int block = std::max(1, std::min(iters, 20));
  const int rounds = std::max(1, (iters + block - 1) / block);
  for (int round = 0; round < rounds; ++round) {
    for (Exchanger& e : exchangers) {
      comm.barrier();
      for (int i = -warmup; i < block; ++i) {
        restore(e);
        const auto start = Clock::now();
        e.bytes = e.sync->synchronize(1);
        if (i >= 0) e.seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        e.sync->commit();
        // Each call is one warm-started step with nothing carried over: the error column is what a
        // rank-r approximation (after power iteration on this gradient) leaves out of one step.
        ExchangeState state = e.sync->state();
        for (auto& [name, tensor] : state)
          if (name.rfind("error.", 0) == 0) tensor.zero_();
        e.sync->set_state(state);
      }
    }
  }
  if (comm.rank() != 0) {
    for (Exchanger& e : exchangers) relative_error(e, mean);
    return;
  }
  const double base = median(exchangers[0].seconds);
  fmt::print("# gradient exchange of {} ({} gradients + {} flags), {} ranks, backend {}, median of {} calls "
             "({} rounds of {} back to back per mode, alternating; {} untimed before each block)\n",
             describe(model), parameter_count(*exchangers[0].model), kExtraSlots, n, comm.backend_name(),
             rounds * block, rounds, block, warmup);
  fmt::print("# {:<13} {:>12} {:>12} {:>10} {:>9} {:>10}\n", "mode", "payload(B)", "ring wire(B)", "time(us)",
             "vs " + exchangers[0].mode.label, "rel.error");
  for (Exchanger& e : exchangers) {
    const double seconds = median(e.seconds);
    const int64_t wire = n > 1 ? e.bytes * 2 * (n - 1) / n : 0;
    fmt::print("  {:<13} {:>12} {:>12} {:>10.1f} {:>8.2f}x {:>10.2e}\n", e.mode.label, e.bytes, wire, seconds * 1e6,
               base / seconds, relative_error(e, mean));
  }
}

}  // namespace ddp::tools
