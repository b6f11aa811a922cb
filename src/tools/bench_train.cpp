// Training throughput benchmark: per rank, a plain LibTorch loop (no sampler, no
// communication) and the data-parallel Replica step, interleaved round by round so both
// see the same machine noise; prints samples/s per rank and in total, the ratio of the
// two, and the share of step time spent in the gradient all-reduce.
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

    double plain_seconds = 0, ddp_seconds = 0;
    plain_epoch(plain_model, plain_optimizer, dataset.train, batch, steps / 10, 0);  // warm caches and allocator
    for (int round = 0; round < rounds; ++round) {
      comm->barrier();
      plain_seconds += plain_epoch(plain_model, plain_optimizer, dataset.train, batch, steps, round);
      comm->barrier();
      const torch::Tensor order = sampler.indices(round);
      const auto start = Clock::now();
      for (int64_t s = 0; s < steps; ++s) {
        const torch::Tensor idx = order.narrow(0, s * batch, batch);
        replica.step(dataset.train.images.index_select(0, idx), dataset.train.labels.index_select(0, idx),
                     config.optim.base_lr);
      }
      ddp_seconds += since(start);
    }
    const double samples = double(rounds * steps * batch);
    const double plain_rate = samples / plain_seconds, ddp_rate = samples / ddp_seconds;
    const auto& t = replica.times();
    const double comm_share = t.comm_seconds / (t.comm_seconds + t.compute_seconds);

    torch::Tensor rates = torch::tensor({plain_rate, ddp_rate, comm_share}, torch::kFloat64);
    torch::Tensor total = rates.clone();
    comm->allreduce(total, ddp::ReduceOp::Sum);
    const auto all = comm->allgather(fmt::format("{:.0f} {:.0f} {:.3f}", plain_rate, ddp_rate, comm_share));
    if (comm->rank() == 0) {
      fmt::print("# {} ranks, {}, local batch {}, {} steps/epoch, {} rounds, {} thread(s)/rank\n", comm->size(),
                 config.data.name, batch, steps, rounds, config.runtime.threads);
      fmt::print("{:>5} {:>14} {:>14} {:>10} {:>12}\n", "rank", "plain_sps", "ddp_sps", "ddp/plain", "allreduce%");
      for (int r = 0; r < comm->size(); ++r) {
        double p = 0, d = 0, c = 0;
        std::sscanf(all[r].c_str(), "%lf %lf %lf", &p, &d, &c);
        fmt::print("{:>5} {:>14.0f} {:>14.0f} {:>10.3f} {:>11.1f}%\n", r, p, d, d / p, 100 * c);
      }
      const double plain_total = total[0].item<double>(), ddp_total = total[1].item<double>();
      fmt::print("{:>5} {:>14.0f} {:>14.0f} {:>10.3f} {:>11.1f}%\n", "total", plain_total, ddp_total,
                 ddp_total / plain_total, 100 * total[2].item<double>() / comm->size());
      fmt::print("RESULT ranks={} ddp_total_sps={:.0f} plain_per_rank_sps={:.0f} ddp_vs_plain={:.3f} "
                 "allreduce_share={:.3f}\n",
                 comm->size(), ddp_total, plain_total / comm->size(), ddp_total / plain_total,
                 total[2].item<double>() / comm->size());
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "ddp-bench-train: error: {}\n", e.what());
    return dynamic_cast<const ddp::InputError*>(&e) ? ddp::kExitBadInput : ddp::kExitFailure;
  }
  return 0;
}
