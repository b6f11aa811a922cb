// Training throughput benchmark: per rank, a plain LibTorch loop (no sampler, no
// communication) and the data-parallel Replica step without and with the gradient
// noise-scale measurement, interleaved round by round so all see the same machine
// noise; prints samples/s per rank and in total, the ratios, and the share of step
// time spent in the gradient all-reduce. On a GPU (device=cuda) the data lives on the
// device, each rank's step all-reduces over NCCL, and epochs are timed between device
// synchronisations; --synthetic times an MNIST-sized epoch without the files.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <ATen/record_function.h>

#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "comm/MpiRuntime.h"
#include "common/Errors.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "data/DistributedSampler.h"
#include "train/Replica.h"
#include "train/Trainer.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The baseline: what a user would write with LibTorch alone on one process.
// Host timestamps time the device's work only once it has finished.
void wait_for_device(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double plain_epoch(ddp::SimpleNN& model, torch::optim::SGD& optimizer, const ddp::Split& data, int64_t batch,
                   int64_t steps, int64_t epoch) {
  const torch::Device device = data.images.device();
  const torch::Tensor order = torch::randperm(data.size(), torch::TensorOptions(torch::kInt64).device(device));
  wait_for_device(device);
  const auto start = Clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const torch::Tensor idx = order.narrow(0, ((s + epoch * steps) * batch) % (data.size() - batch + 1), batch);
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(data.images.index_select(0, idx)),
                                                              data.labels.index_select(0, idx));
    loss.backward();
    optimizer.step();
  }
  wait_for_device(device);
  return since(start);
}

// Counts the ATen operators that do work themselves while `work` runs: those without a
// working operator inside, leaving out views, allocations and no-op checks. On a GPU each
// is at least one kernel launch, so the count says whether a step is launch-bound.
struct OpCount {
  int64_t kernels = 0;
  std::map<std::string, int> by_name;
};
const std::set<std::string> kNoKernel = {
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::view", "aten::_reshape_alias",
    "aten::reshape", "aten::as_strided", "aten::t", "aten::transpose", "aten::permute", "aten::expand",
    "aten::narrow", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::detach",
    "aten::alias", "aten::lift_fresh", "aten::to", "aten::resize_", "aten::set_", "aten::_unsafe_view",
    "aten::result_type", "aten::_backward", "aten::resolve_conj", "aten::resolve_neg", "aten::conj", "aten::numpy_T"};
thread_local std::vector<bool> op_has_working_child;
OpCount* op_sink = nullptr;
std::mutex op_sink_mutex;  // autograd may run backward operators on its own device thread

template <typename Work>
OpCount count_kernel_ops(Work&& work) {
  OpCount count;
  op_sink = &count;
  auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction&) -> std::unique_ptr<at::ObserverContext> {
            op_has_working_child.push_back(false);
            return nullptr;
          },
          [](const at::RecordFunction& fn, at::ObserverContext*) {
            const bool inner_work = op_has_working_child.back();
            op_has_working_child.pop_back();
            const std::string name = fn.name();  // autograd's own records ("engine::...") are not operators
            const bool works_itself = !inner_work && name.rfind("aten::", 0) == 0 && !kNoKernel.count(name);
            if (works_itself && op_sink) {
              std::lock_guard<std::mutex> lock(op_sink_mutex);
              ++op_sink->kernels, ++op_sink->by_name[name];
            }
            if ((works_itself || inner_work) && !op_has_working_child.empty()) op_has_working_child.back() = true;
          })
          .scopes({at::RecordScope::FUNCTION}));
  work();
  at::removeCallback(handle);
  op_sink = nullptr;
  return count;
}

std::string describe(const OpCount& count) {
  std::string text;
  for (const auto& [name, n] : count.by_name) text += fmt::format(" {} x{}", name.substr(6), n);
  return text;
}

// MNIST's shapes and value range, random content: the step costs the same.
ddp::Dataset synthetic_dataset(int64_t samples) {
  torch::manual_seed(0);
  return {"synthetic", {torch::rand({samples, 784}), torch::randint(10, {samples}, torch::kInt64)},
          {torch::rand({1000, 784}), torch::randint(10, {1000}, torch::kInt64)}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp-bench-train: samples/s of the data-parallel step against a plain LibTorch loop"};
  std::string config_path;
  std::vector<std::string> overrides;
  int rounds = 3;
  int64_t synthetic = 0;
  bool count_ops = false;
  app.add_option("--config", config_path, "YAML config (data, batch, threads, device)");
  app.add_option("--synthetic", synthetic, "random MNIST-shaped training samples instead of data.dir (60000: MNIST)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  app.add_flag("--count-ops", count_ops,
               "also count the kernel-launching ATen operators of one plain and one data-parallel step");
  app.add_option("--rounds", rounds, "alternating plain/ddp epochs per kind");
  app.add_option("overrides", overrides, "section.key=value overrides");
  CLI11_PARSE(app, argc, argv);

  ddp::MpiRuntime mpi(&argc, &argv);
  try {
    const ddp::Config config = ddp::load_config(config_path, overrides);
    ddp::set_compute_threads(int(config.runtime.threads));
    const torch::Device device = ddp::resolve_device(config.device);
    auto comm = ddp::make_communicator(config.comm.backend, device, config.comm.timeout_s);
    const ddp::Dataset loaded = synthetic > 0 ? synthetic_dataset(synthetic)
                                              : ddp::load_dataset(config.data.name, config.data.dir,
                                                                  config.data.normalize);
    // Resident on the device, as in the trainer: a step only gathers rows by index.
    const ddp::Dataset dataset{loaded.name, loaded.train.to(device), loaded.test.to(device)};
    const int64_t check_every = ddp::resolve_check_every(config, device);
    const int64_t batch = config.train.local_batch;
    ddp::DistributedSampler sampler(dataset.train.size(), comm->size(), comm->rank(), batch, true,
                                    uint64_t(config.train.seed), config.train.remainder);
    const int64_t steps = sampler.steps_per_epoch();

    ddp::SimpleNN plain_model = ddp::make_simple_nn(uint64_t(config.train.seed));
    plain_model->to(device);
    torch::optim::SGD plain_optimizer(plain_model->parameters(), torch::optim::SGDOptions(config.optim.base_lr));
    ddp::Replica replica(config, *comm, device);

    // One epoch of Replica steps; `measure_noise` adds the noise-scale measurement every
    // metrics.noise_scale_every steps, as the trainer does.
    const int64_t noise_every = std::max<int64_t>(1, config.metrics.noise_scale_every);
    auto ddp_epoch = [&](int64_t epoch, bool measure_noise) {
      const torch::Tensor order = sampler.indices(epoch).to(device);
      ddp::NoiseSample sample;
      wait_for_device(device);
      const auto start = Clock::now();
      for (int64_t s = 0; s < steps; ++s) {
        const torch::Tensor idx = order.narrow(0, s * batch, batch);
        replica.step(dataset.train.images.index_select(0, idx), dataset.train.labels.index_select(0, idx),
                     config.optim.base_lr, 1, measure_noise && s % noise_every == 0 ? &sample : nullptr, false,
                     (s + 1) % check_every == 0 || s + 1 == steps);
      }
      wait_for_device(device);
      return since(start);
    };
    if (count_ops) {
      const torch::Tensor idx = sampler.indices(0).narrow(0, 0, batch).to(device);
      const torch::Tensor x = dataset.train.images.index_select(0, idx), y = dataset.train.labels.index_select(0, idx);
      const OpCount plain = count_kernel_ops([&] {
        plain_optimizer.zero_grad();
        torch::nn::functional::cross_entropy(plain_model->forward(x), y).backward();
        plain_optimizer.step();
      });
      const OpCount unchecked = count_kernel_ops([&] { replica.step(x, y, config.optim.base_lr, 1, nullptr, false, false); });
      const OpCount checked = count_kernel_ops([&] { replica.step(x, y, config.optim.base_lr); });
      ddp::NoiseSample sample;
      const OpCount noise = count_kernel_ops([&] { replica.step(x, y, config.optim.base_lr, 1, &sample, false, false); });
      if (comm->rank() == 0) {
        fmt::print("# kernel-launching ATen operators per step (each is at least one GPU kernel launch):\n");
        fmt::print("#   plain LibTorch step: {:3d}:{}\n", plain.kernels, describe(plain));
        fmt::print("#   ddp step, flags not read: {:3d}:{}\n", unchecked.kernels, describe(unchecked));
        fmt::print("#   ddp step, flags read: {:3d}; with the noise measurement: {:3d}\n", checked.kernels, noise.kernels);
      }
    }
    double plain_seconds = 0, ddp_seconds = 0, noise_seconds = 0;
    plain_epoch(plain_model, plain_optimizer, dataset.train, batch, steps / 10, 0);  // warm caches and allocator
    ddp::StepTimes times;
    for (int round = 0; round < rounds; ++round) {
      comm->barrier();
      plain_seconds += plain_epoch(plain_model, plain_optimizer, dataset.train, batch, steps, round);
      comm->barrier();
      replica.reset_times();
      ddp_seconds += ddp_epoch(round, false);
      times.comm_seconds += replica.times().comm_seconds;
      times.compute_seconds += replica.times().compute_seconds;
      comm->barrier();
      noise_seconds += ddp_epoch(round, true);
    }
    const double samples = double(rounds * steps * batch);
    const double plain_rate = samples / plain_seconds, ddp_rate = samples / ddp_seconds,
                 noise_rate = samples / noise_seconds;
    const double timed = times.comm_seconds + times.compute_seconds;  // 0 on a GPU: not timed there
    const double comm_share = timed > 0 ? times.comm_seconds / timed : 0.0;

    torch::Tensor total =
        torch::tensor({plain_rate, ddp_rate, comm_share, noise_rate}, torch::kFloat64).to(comm->device());
    comm->allreduce(total, ddp::ReduceOp::Sum);
    total = total.cpu();
    const auto all =
        comm->allgather(fmt::format("{:.0f} {:.0f} {:.3f} {:.0f}", plain_rate, ddp_rate, comm_share, noise_rate));
    if (comm->rank() == 0) {
      fmt::print("# {} ranks, {} ({}, {}), {} samples, local batch {}, {} steps/epoch, {} rounds, {} thread(s)/rank, "
                 "flags read every {} steps, noise scale every {} steps\n",
                 comm->size(), dataset.name, device.str(), comm->backend_name(), dataset.train.size(), batch, steps,
                 rounds, config.runtime.threads, check_every, noise_every);
      if (device.is_cuda()) fmt::print("# all-reduce share: not timed on the GPU (host clocks would time launches)\n");
      fmt::print("{:>5} {:>12} {:>12} {:>10} {:>11} {:>14} {:>15}\n", "rank", "plain_sps", "ddp_sps", "ddp/plain",
                 "allreduce%", "ddp+noise_sps", "noise_overhead%");
      auto row = [](const std::string& who, double p, double d, double c, double n) {
        fmt::print("{:>5} {:>12.0f} {:>12.0f} {:>10.3f} {:>10.1f}% {:>14.0f} {:>14.1f}%\n", who, p, d, d / p, 100 * c, n,
                   100 * (d / n - 1));
      };
      for (int r = 0; r < comm->size(); ++r) {
        double p = 0, d = 0, c = 0, n = 0;
        std::sscanf(all[r].c_str(), "%lf %lf %lf %lf", &p, &d, &c, &n);
        row(std::to_string(r), p, d, c, n);
      }
      const double plain_total = total[0].item<double>(), ddp_total = total[1].item<double>(),
                   noise_total = total[3].item<double>();
      row("total", plain_total, ddp_total, total[2].item<double>() / comm->size(), noise_total);
      fmt::print("RESULT ranks={} device={} ddp_total_sps={:.0f} plain_per_rank_sps={:.0f} ddp_vs_plain={:.3f} "
                 "allreduce_share={:.3f} noise_overhead={:.3f} ddp_epoch_ms={:.2f} plain_epoch_ms={:.2f}\n",
                 comm->size(), device.str(), ddp_total, plain_total / comm->size(), ddp_total / plain_total,
                 total[2].item<double>() / comm->size(), ddp_total / noise_total - 1, 1e3 * ddp_seconds / rounds,
                 1e3 * plain_seconds / rounds);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "ddp-bench-train: error: {}\n", e.what());
    return dynamic_cast<const ddp::InputError*>(&e) ? ddp::kExitBadInput : ddp::kExitFailure;
  }
  return 0;
}
