// Training throughput benchmark: per rank, a plain LibTorch loop (no sampler, no
// communication) and the data-parallel Replica step without and with the gradient
// noise-scale measurement, interleaved round by round so all see the same machine
// noise; prints samples/s per rank and in total, the ratios, and the share of step
// time spent in the gradient all-reduce.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <chrono>

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
double plain_epoch(ddp::SimpleNN& model, torch::optim::SGD& optimizer, const ddp::Split& data, int64_t batch,
                   int64_t steps, int64_t epoch) {
  const torch::Tensor order = torch::randperm(data.size(), torch::kInt64);
  const auto start = Clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const torch::Tensor idx = order.narrow(0, ((s + epoch * steps) * batch) % (data.size() - batch + 1), batch);
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(data.images.index_select(0, idx)),
                                                              data.labels.index_select(0, idx));
    loss.backward();
    optimizer.step();
  }
  return since(start);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp-bench-train: samples/s of the data-parallel step against a plain LibTorch loop"};
  std::string config_path;
  std::vector<std::string> overrides;
  int rounds = 3;
  app.add_option("--config", config_path, "YAML config (data, batch, threads)");
  app.add_option("--rounds", rounds, "alternating plain/ddp epochs per kind");
  app.add_option("overrides", overrides, "section.key=value overrides");
  CLI11_PARSE(app, argc, argv);

  ddp::MpiRuntime mpi(&argc, &argv);
  try {
    const ddp::Config config = ddp::load_config(config_path, overrides);
    ddp::set_compute_threads(int(config.runtime.threads));
    auto comm = ddp::make_mpi_world_communicator();
    const ddp::Dataset dataset = ddp::load_dataset(config.data.name, config.data.dir, config.data.normalize);
    const int64_t batch = config.train.local_batch;
    ddp::DistributedSampler sampler(dataset.train.size(), comm->size(), comm->rank(), batch, true,
                                    uint64_t(config.train.seed), config.train.remainder);
    const int64_t steps = sampler.steps_per_epoch();

    ddp::SimpleNN plain_model = ddp::make_simple_nn(uint64_t(config.train.seed));
    torch::optim::SGD plain_optimizer(plain_model->parameters(), torch::optim::SGDOptions(config.optim.base_lr));
    ddp::Replica replica(config, *comm, torch::kCPU);

    // One epoch of Replica steps; `measure_noise` adds the noise-scale measurement every
    // metrics.noise_scale_every steps, as the trainer does.
    const int64_t noise_every = std::max<int64_t>(1, config.metrics.noise_scale_every);
    auto ddp_epoch = [&](int64_t epoch, bool measure_noise) {
      const torch::Tensor order = sampler.indices(epoch);
      ddp::NoiseSample sample;
      const auto start = Clock::now();
      for (int64_t s = 0; s < steps; ++s) {
        const torch::Tensor idx = order.narrow(0, s * batch, batch);
        replica.step(dataset.train.images.index_select(0, idx), dataset.train.labels.index_select(0, idx),
                     config.optim.base_lr, 1, measure_noise && s % noise_every == 0 ? &sample : nullptr);
      }
      return since(start);
    };
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
    const double comm_share = times.comm_seconds / (times.comm_seconds + times.compute_seconds);

    torch::Tensor total = torch::tensor({plain_rate, ddp_rate, comm_share, noise_rate}, torch::kFloat64);
    comm->allreduce(total, ddp::ReduceOp::Sum);
    const auto all =
        comm->allgather(fmt::format("{:.0f} {:.0f} {:.3f} {:.0f}", plain_rate, ddp_rate, comm_share, noise_rate));
    if (comm->rank() == 0) {
      fmt::print("# {} ranks, {}, local batch {}, {} steps/epoch, {} rounds, {} thread(s)/rank, noise scale every {} "
                 "steps\n",
                 comm->size(), config.data.name, batch, steps, rounds, config.runtime.threads, noise_every);
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
      fmt::print("RESULT ranks={} ddp_total_sps={:.0f} plain_per_rank_sps={:.0f} ddp_vs_plain={:.3f} "
                 "allreduce_share={:.3f} noise_overhead={:.3f}\n",
                 comm->size(), ddp_total, plain_total / comm->size(), ddp_total / plain_total,
                 total[2].item<double>() / comm->size(), ddp_total / noise_total - 1);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "ddp-bench-train: error: {}\n", e.what());
    return dynamic_cast<const ddp::InputError*>(&e) ? ddp::kExitBadInput : ddp::kExitFailure;
  }
  return 0;
}
