// Training throughput benchmark: per rank, a plain LibTorch loop (no sampler, no
// communication) and the data-parallel Replica step without and with the gradient
// noise-scale measurement, interleaved round by round so all see the same machine
// noise; prints samples/s per rank and in total, the ratios, and the share of step
// time spent in the gradient all-reduce. On a GPU (device=cuda) the data lives on the
// device, each rank's step all-reduces over NCCL, and epochs are timed between device
// synchronisations; --synthetic times an MNIST-sized epoch without the files. The model is the
// config's (model.name), in both loops.
// --batch-norm also times the step with each model.batch_norm (none, local, sync), in the
// same rounds, and prints them side by side; --storage times it with the training set kept
// as uint8 pixels (as the trainer keeps it) against float32 inputs (as it once did).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <vector>

#include "comm/Backend.h"
#include "comm/MpiRuntime.h"
#include "common/Errors.h"
#include "config/Config.h"
#include "data/Dataset.h"
#include "data/DistributedSampler.h"
#include "train/Replica.h"
#include "runtime/Device.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The baseline: what a user would write with LibTorch alone on one process.
// Host timestamps time the device's work only once it has finished.
void wait_for_device(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double plain_epoch(ddp::Model& model, torch::optim::SGD& optimizer, const ddp::Split& data, int64_t batch,
                   int64_t steps, int64_t epoch) {
  const torch::Device device = data.labels.device();
  const torch::Tensor order = torch::randperm(data.size(), torch::TensorOptions(torch::kInt64).device(device));
  wait_for_device(device);
  const auto start = Clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const torch::Tensor idx = order.narrow(0, ((s + epoch * steps) * batch) % (data.size() - batch + 1), batch);
    optimizer.zero_grad();
    const ddp::Split x = data.rows(idx);  // the trainer's batch: uint8 pixels made inputs
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x.images), x.labels);
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

// MNIST's shapes and pixels, random content: the step costs the same.
ddp::Dataset synthetic_dataset(int64_t samples) {
  torch::manual_seed(0);
  auto split = [](int64_t n) -> ddp::Split {
    return {torch::randint(256, {n, 784}, torch::kUInt8), torch::randint(10, {n}, torch::kInt64), ddp::PixelScale{}};
  };
  return {"synthetic", split(samples), split(1000)};
}

const std::vector<ddp::BatchNorm> kBatchNorms = {ddp::BatchNorm::None, ddp::BatchNorm::Local, ddp::BatchNorm::Sync};

// Everything one benchmark run holds: the data on the device, a plain model with its
// optimizer, and the data-parallel replica, each fed the same batch size; with
// --batch-norm, one more replica per model.batch_norm (in kBatchNorms' order); with --storage,
// the training set once more as float32 inputs.
struct Bench {
  const ddp::Config& config;
  torch::Device device;
  ddp::Communicator& comm;
  ddp::Dataset dataset;
  ddp::Split float_train;  // --storage: dataset.train converted whole, as the trainer once held it
  ddp::DistributedSampler sampler;
  int64_t batch, steps, check_every, noise_every;
  ddp::Model plain_model;  // model.name's model, as the replica's
  torch::optim::SGD plain_optimizer;
  ddp::Replica replica;
  std::vector<std::unique_ptr<ddp::Replica>> bn_replicas;

  Bench(const ddp::Config& c, torch::Device d, ddp::Communicator& cm, const ddp::Dataset& loaded, bool batch_norm,
        bool storage)
      : config(c),
        device(d),
        comm(cm),
        // Resident on the device, as in the trainer: a step only gathers rows by index.
        dataset{loaded.name, loaded.train.to(d), loaded.test.to(d)},
        float_train(storage ? dataset.train.range(0, dataset.train.size()) : ddp::Split{}),
        sampler(dataset.train.size(), cm.size(), cm.rank(), c.train.local_batch, true, uint64_t(c.train.seed),
                c.train.remainder),
        batch(c.train.local_batch),
        steps(sampler.steps_per_epoch()),
        check_every(ddp::resolve_check_every(c, d)),
        noise_every(std::max<int64_t>(1, c.metrics.noise_scale_every)),
        plain_model(ddp::make_model(c.model, uint64_t(c.train.seed))),
        plain_optimizer(plain_model->parameters(), torch::optim::SGDOptions(c.optim.base_lr)),
        replica(c, cm, d) {
    plain_model->to(device);
    for (const ddp::BatchNorm mode : kBatchNorms) {
      if (!batch_norm) break;
      ddp::Config with_mode = c;
      with_mode.model.batch_norm = mode;
      bn_replicas.push_back(std::make_unique<ddp::Replica>(with_mode, cm, d));
    }
  }

  // One epoch of Replica steps; `measure_noise` adds the noise-scale measurement every
  // metrics.noise_scale_every steps, as the trainer does.
  double ddp_epoch(int64_t epoch, bool measure_noise) { return ddp_epoch(replica, epoch, measure_noise); }
  double ddp_epoch(ddp::Replica& stepper, int64_t epoch, bool measure_noise) {
    return ddp_epoch(stepper, epoch, measure_noise, dataset.train);
  }
  double ddp_epoch(ddp::Replica& stepper, int64_t epoch, bool measure_noise, const ddp::Split& train) {
    const torch::Tensor order = sampler.indices(epoch).to(device);
    ddp::NoiseSample sample;
    wait_for_device(device);
    const auto start = Clock::now();
    for (int64_t s = 0; s < steps; ++s) {
      ddp::StepOptions options;
      options.lr = config.optim.base_lr;
      options.noise = measure_noise && s % noise_every == 0 ? &sample : nullptr;
      options.check = (s + 1) % check_every == 0 || s + 1 == steps;
      stepper.step(train.rows(order.narrow(0, s * batch, batch)), options);
    }
    wait_for_device(device);
    return since(start);
  }

  void print_op_counts() {
    const ddp::Split x = dataset.train.rows(sampler.indices(0).narrow(0, 0, batch).to(device));
    const OpCount plain = count_kernel_ops([&] {
      plain_optimizer.zero_grad();
      torch::nn::functional::cross_entropy(plain_model->forward(x.images), x.labels).backward();
      plain_optimizer.step();
    });
    ddp::NoiseSample sample;
    const double lr = config.optim.base_lr;
    const OpCount unchecked = count_kernel_ops([&] { replica.step(x, {lr, nullptr, false, false}); });
    const OpCount checked = count_kernel_ops([&] { replica.step(x, {lr}); });
    const OpCount noise = count_kernel_ops([&] { replica.step(x, {lr, &sample, false, false}); });
    if (comm.rank() != 0) return;
    fmt::print("# kernel-launching ATen operators per step (each is at least one GPU kernel launch):\n");
    fmt::print("#   plain LibTorch step: {:3d}:{}\n", plain.kernels, describe(plain));
    fmt::print("#   ddp step, flags not read: {:3d}:{}\n", unchecked.kernels, describe(unchecked));
    fmt::print("#   ddp step, flags read: {:3d}; with the noise measurement: {:3d}\n", checked.kernels, noise.kernels);
  }

  // This rank's figures over `rounds` interleaved epochs of each kind.
  struct Rates {
    double plain, ddp, comm_share, noise, plain_seconds, ddp_seconds;
    std::vector<double> bn;  // samples/s per model.batch_norm, in kBatchNorms' order
    // Each mode's speed against none: the median over rounds of the ratio within a round, whose
    // three epochs run back to back, so that another job slowing one round skews no ratio.
    std::vector<double> bn_vs_none;
    // --storage: samples/s with uint8 and with float32 storage, and uint8's speed against
    // float32's (the median over rounds of the ratio within a round, as bn_vs_none).
    double uint8 = 0, float32 = 0, uint8_vs_float32 = 0;
  };
  Rates measure(int rounds) {
    double plain_seconds = 0, ddp_seconds = 0, noise_seconds = 0;
    std::vector<std::vector<double>> bn_seconds(bn_replicas.size());  // [mode][round]
    std::vector<double> uint8_seconds, float32_seconds;                 // [round]
    plain_epoch(plain_model, plain_optimizer, dataset.train, batch, steps / 10, 0);  // warm caches and allocator
    ddp::StepTimes times;
    for (int round = 0; round < rounds; ++round) {
      comm.barrier();
      plain_seconds += plain_epoch(plain_model, plain_optimizer, dataset.train, batch, steps, round);
      comm.barrier();
      replica.reset_times();
      ddp_seconds += ddp_epoch(round, false);
      times.comm_seconds += replica.times().comm_seconds;
      times.compute_seconds += replica.times().compute_seconds;
      comm.barrier();
      noise_seconds += ddp_epoch(round, true);
      for (size_t k = 0; k < bn_replicas.size(); ++k) {
        comm.barrier();
        bn_seconds[k].push_back(ddp_epoch(*bn_replicas[k], round, false));
      }
      if (float_train.images.defined()) time_storage(round, uint8_seconds, float32_seconds);
    }
    const double samples = double(rounds * steps * batch);
    const double timed = times.comm_seconds + times.compute_seconds;  // 0 on a GPU: not timed there
    Rates rates{samples / plain_seconds, samples / ddp_seconds, timed > 0 ? times.comm_seconds / timed : 0.0,
                samples / noise_seconds, plain_seconds, ddp_seconds, {}};
    for (const auto& seconds : bn_seconds) {
      rates.bn.push_back(samples / std::accumulate(seconds.begin(), seconds.end(), 0.0));
      std::vector<double> ratios;
      for (int round = 0; round < rounds; ++round) ratios.push_back(bn_seconds[0][round] / seconds[round]);
      std::nth_element(ratios.begin(), ratios.begin() + rounds / 2, ratios.end());
      rates.bn_vs_none.push_back(ratios[rounds / 2]);
    }
    if (!uint8_seconds.empty()) {
      rates.uint8 = samples / std::accumulate(uint8_seconds.begin(), uint8_seconds.end(), 0.0);
      rates.float32 = samples / std::accumulate(float32_seconds.begin(), float32_seconds.end(), 0.0);
      std::vector<double> ratios;
      for (int round = 0; round < rounds; ++round) ratios.push_back(float32_seconds[round] / uint8_seconds[round]);
      std::nth_element(ratios.begin(), ratios.begin() + rounds / 2, ratios.end());
      rates.uint8_vs_float32 = ratios[rounds / 2];
    }
    return rates;
  }

  // One epoch with each storage, back to back, the first of the two alternating by round so
  // that neither always runs on the warmer caches.
  void time_storage(int round, std::vector<double>& uint8_seconds, std::vector<double>& float32_seconds) {
    for (int k = 0; k < 2; ++k) {
      const bool uint8 = (k + round) % 2 == 0;
      comm.barrier();
      const double seconds = ddp_epoch(replica, round, false, uint8 ? dataset.train : float_train);
      (uint8 ? uint8_seconds : float32_seconds).push_back(seconds);
    }
  }

  // Rank 0 prints a row per rank, the total, and one RESULT line for scripts.
  void print(const Rates& mine, int rounds) {
    torch::Tensor total = torch::tensor({mine.plain, mine.ddp, mine.comm_share, mine.noise}, torch::kFloat64)
                              .to(comm.device());
    comm.allreduce(total, ddp::ReduceOp::Sum);
    total = total.cpu();
    const auto all = comm.allgather(fmt::format("{:.0f} {:.0f} {:.3f} {:.0f}", mine.plain, mine.ddp,
                                                mine.comm_share, mine.noise));
    if (comm.rank() != 0) return;
    fmt::print("# {} ranks, {} ({}, {}), {} samples, local batch {}, {} steps/epoch, {} rounds, {} thread(s)/rank, "
               "flags read every {} steps, noise scale every {} steps\n",
               comm.size(), dataset.name, device.str(), comm.backend_name(), dataset.train.size(), batch, steps,
               rounds, config.runtime.threads, check_every, noise_every);
    if (device.is_cuda()) fmt::print("# all-reduce share: not timed on the GPU (host clocks would time launches)\n");
    fmt::print("{:>5} {:>12} {:>12} {:>10} {:>11} {:>14} {:>15}\n", "rank", "plain_sps", "ddp_sps", "ddp/plain",
               "allreduce%", "ddp+noise_sps", "noise_overhead%");
    auto row = [](const std::string& who, double p, double d, double c, double n) {
      fmt::print("{:>5} {:>12.0f} {:>12.0f} {:>10.3f} {:>10.1f}% {:>14.0f} {:>14.1f}%\n", who, p, d, d / p, 100 * c, n,
                 100 * (d / n - 1));
    };
    for (int r = 0; r < comm.size(); ++r) {
      double p = 0, d = 0, c = 0, n = 0;
      std::sscanf(all[r].c_str(), "%lf %lf %lf %lf", &p, &d, &c, &n);
      row(std::to_string(r), p, d, c, n);
    }
    const double plain_total = total[0].item<double>(), ddp_total = total[1].item<double>(),
                 comm_share = total[2].item<double>() / comm.size(), noise_total = total[3].item<double>();
    row("total", plain_total, ddp_total, comm_share, noise_total);
    fmt::print("RESULT ranks={} device={} ddp_total_sps={:.0f} plain_per_rank_sps={:.0f} ddp_vs_plain={:.3f} "
               "allreduce_share={:.3f} noise_overhead={:.3f} ddp_epoch_ms={:.2f} plain_epoch_ms={:.2f}\n",
               comm.size(), device.str(), ddp_total, plain_total / comm.size(), ddp_total / plain_total, comm_share,
               ddp_total / noise_total - 1, 1e3 * mine.ddp_seconds / rounds, 1e3 * mine.plain_seconds / rounds);
  }

  // The model.batch_norm table (--batch-norm): samples/s per rank and in total for none, local
  // and sync (without the noise measurement), and each against none (median of the rounds';
  // total: the mean of the ranks'). Collective, as print.
  void print_batch_norm(const Rates& mine) {
    std::vector<double> sums = mine.bn;
    sums.insert(sums.end(), mine.bn_vs_none.begin(), mine.bn_vs_none.end());
    torch::Tensor total = torch::tensor(sums, torch::kFloat64).to(comm.device());
    comm.allreduce(total, ddp::ReduceOp::Sum);
    total = total.cpu();
    const auto all = comm.allgather(fmt::format("{:.0f} {:.0f} {:.0f} {:.4f} {:.4f}", mine.bn[0], mine.bn[1],
                                                mine.bn[2], mine.bn_vs_none[1], mine.bn_vs_none[2]));
    if (comm.rank() != 0) return;
    fmt::print("# model.batch_norm: the data-parallel step (no noise measurement) with no BN, local BN (each rank's "
               "batch) and sync BN (the global batch: two more all-reduces of 257 and 256 doubles a step)\n");
    fmt::print("{:>5} {:>12} {:>12} {:>12} {:>11} {:>11}\n", "rank", "none_sps", "local_sps", "sync_sps", "local/none",
               "sync/none");
    auto row = [](const std::string& who, double none, double local, double sync, double local_ratio,
                  double sync_ratio) {
      fmt::print("{:>5} {:>12.0f} {:>12.0f} {:>12.0f} {:>11.3f} {:>11.3f}\n", who, none, local, sync, local_ratio,
                 sync_ratio);
    };
    for (int r = 0; r < comm.size(); ++r) {
      double none = 0, local = 0, sync = 0, local_ratio = 0, sync_ratio = 0;
      std::sscanf(all[r].c_str(), "%lf %lf %lf %lf %lf", &none, &local, &sync, &local_ratio, &sync_ratio);
      row(std::to_string(r), none, local, sync, local_ratio, sync_ratio);
    }
    const double none = total[0].item<double>(), local = total[1].item<double>(), sync = total[2].item<double>();
    const double local_ratio = total[4].item<double>() / comm.size(), sync_ratio = total[5].item<double>() / comm.size();
    row("total", none, local, sync, local_ratio, sync_ratio);
    fmt::print("RESULT_BN ranks={} device={} none_sps={:.0f} local_sps={:.0f} sync_sps={:.0f} local_vs_none={:.3f} "
               "sync_vs_none={:.3f}\n",
               comm.size(), device.str(), none, local, sync, local_ratio, sync_ratio);
  }

  // The --storage table: samples/s per rank and in total with each storage, and uint8 against
  // float32 (median of the rounds'; total: the mean of the ranks'). Collective, as print.
  void print_storage(const Rates& mine) {
    torch::Tensor total =
        torch::tensor({mine.uint8, mine.float32, mine.uint8_vs_float32}, torch::kFloat64).to(comm.device());
    comm.allreduce(total, ddp::ReduceOp::Sum);
    total = total.cpu();
    const auto all =
        comm.allgather(fmt::format("{:.0f} {:.0f} {:.4f}", mine.uint8, mine.float32, mine.uint8_vs_float32));
    if (comm.rank() != 0) return;
    auto megabytes = [](const torch::Tensor& t) { return double(t.numel() * t.element_size()) / 1e6; };
    fmt::print("# training set storage: uint8 pixels made inputs as each batch is drawn ({:.1f} MB per rank) vs "
               "float32 inputs ({:.1f} MB); the data-parallel step, no noise measurement\n",
               megabytes(dataset.train.images), megabytes(float_train.images));
    fmt::print("{:>5} {:>12} {:>12} {:>13}\n", "rank", "uint8_sps", "float32_sps", "uint8/float32");
    auto row = [](const std::string& who, double uint8, double float32, double ratio) {
      fmt::print("{:>5} {:>12.0f} {:>12.0f} {:>13.3f}\n", who, uint8, float32, ratio);
    };
    for (int r = 0; r < comm.size(); ++r) {
      double uint8 = 0, float32 = 0, ratio = 0;
      std::sscanf(all[r].c_str(), "%lf %lf %lf", &uint8, &float32, &ratio);
      row(std::to_string(r), uint8, float32, ratio);
    }
    const double uint8 = total[0].item<double>(), float32 = total[1].item<double>();
    const double ratio = total[2].item<double>() / comm.size();
    row("total", uint8, float32, ratio);
    fmt::print("RESULT_STORAGE ranks={} device={} uint8_sps={:.0f} float32_sps={:.0f} uint8_vs_float32={:.3f} "
               "uint8_mb={:.1f} float32_mb={:.1f}\n",
               comm.size(), device.str(), uint8, float32, ratio, megabytes(dataset.train.images),
               megabytes(float_train.images));
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp-bench-train: samples/s of the data-parallel step against a plain LibTorch loop"};
  std::string config_path;
  std::vector<std::string> overrides;
  int rounds = 3;
  int64_t synthetic = 0;
  bool count_ops = false;
  bool batch_norm = false;
  bool storage = false;
  app.add_option("--config", config_path, "YAML config (data, batch, threads, device)");
  app.add_option("--synthetic", synthetic, "random MNIST-shaped training samples instead of data.dir (60000: MNIST)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  app.add_flag("--count-ops", count_ops,
               "also count the kernel-launching ATen operators of one plain and one data-parallel step");
  app.add_flag("--batch-norm", batch_norm,
               "also time the step with model.batch_norm none, local and sync, side by side");
  app.add_flag("--storage", storage,
               "also time the step with the training set as uint8 pixels (the trainer's) and as float32 inputs, "
               "side by side");
  app.add_option("--rounds", rounds, "alternating plain/ddp epochs per kind");
  app.add_option("overrides", overrides, "section.key=value overrides");
  CLI11_PARSE(app, argc, argv);

  ddp::MpiRuntime mpi(&argc, &argv);
  try {
    const ddp::Config config = ddp::load_config(config_path, overrides);
    if (config.train.virtual_ranks != 1)
      throw ddp::InputError("train.virtual_ranks: must be 1 here (the benchmark times one rank's step against a plain "
                            "loop on the same batch)");
    ddp::set_compute_threads(int(config.runtime.threads));
    const torch::Device device = ddp::resolve_device(config.device);
    auto comm = ddp::make_communicator(config.comm.backend, device, config.comm.timeout_s);
    Bench bench(config, device, *comm,
                synthetic > 0 ? synthetic_dataset(synthetic)
                              : ddp::load_dataset(config.data.name, config.data.dir, config.data.normalize),
                batch_norm, storage);
    if (count_ops) bench.print_op_counts();
    const Bench::Rates rates = bench.measure(rounds);
    bench.print(rates, rounds);
    if (batch_norm) bench.print_batch_norm(rates);
    if (storage) bench.print_storage(rates);
  } catch (const std::exception& e) {
    fmt::print(stderr, "ddp-bench-train: error: {}\n", ddp::message_of(e));
    return ddp::exit_code_of(e);
  }
  return 0;
}
