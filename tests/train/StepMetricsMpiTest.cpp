// steps.jsonl (metrics.every_steps), driven through the Trainer users run: a line every N
// steps with the lr and the loss averaged over every rank, real or virtual, and the
// noise-scale estimate as of that step; a resume keeps each step's line exactly once.
// Runs under mpiexec -n 2 and -n 4.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "comm/MpiCommunicator.h"
#include "comm/MpiRuntime.h"
#include "data/DistributedSampler.h"
#include "metrics/RunDirectory.h"
#include "schedule/LrSchedule.h"
#include "train/Trainer.h"
#include "train/TrainingState.h"
#include "HalfWorld.h"
#include "SyntheticData.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;
using testing_data::on_half_world;
using testing_data::synthetic_dataset;

Config step_metrics_config() {
  Config config;
  config.train.epochs = 2;
  config.train.local_batch = 8;
  config.train.seed = 5;
  config.optim.base_lr = 0.02;
  config.optim.momentum = 0.9;
  config.lr.rule = ScalingRule::Linear;
  config.lr.base_batch = 8;
  config.lr.warmup_steps = 3;
  config.lr.decay = LrDecay::Cyclic;  // the lr changes at every step
  config.lr.min_lr = 0.001;
  config.lr.cycle_epochs = 1;
  config.metrics.noise_scale_every = 2;  // lines between measurements show the estimate as of then
  config.metrics.every_steps = 1;
  config.checkpoint.every_epochs = 0;
  config.output.progress = false;
  return config;
}

// A fresh directory named by rank 0 of `comm`, the same on every rank.
std::string shared_temp_dir(Communicator& comm, const std::string& name) {
  const std::string mine = testing::TempDir() + "ddp-steps-" + name + "-" + std::to_string(getpid());
  const std::string dir = comm.allgather(comm.rank() == 0 ? mine : std::string())[0];
  if (comm.rank() == 0) fs::remove_all(dir);
  comm.barrier();
  return dir;
}

std::vector<nlohmann::json> read_lines(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Trains on `comm` with rank 0 writing into `dir`; returns the result.
TrainingResult train_into(const std::string& dir, const Config& config, Communicator& comm, const Dataset& data) {
  std::optional<RunDirectory> run_dir;
  if (comm.rank() == 0) run_dir.emplace(RunDirectory::create(dir));
  Trainer trainer(config, comm, data, torch::kCPU, {run_dir ? &*run_dir : nullptr, nullptr});
  return trainer.run();
}

// What one rank holding the whole global batch computes at step 0 (all replicas start from
// the same parameters): the mean of the ranks' losses, since their batches are equal parts of it.
double first_global_batch_loss(const Config& config, const Dataset& data, int64_t global_batch) {
  const DistributedSampler whole(data.train.size(), 1, 0, global_batch, config.train.shuffle,
                                 uint64_t(config.train.seed), config.train.remainder);
  const Split batch = data.train.rows(whole.indices(0).narrow(0, 0, global_batch));
  const Model model = make_model(config.model, uint64_t(config.train.seed));
  torch::NoGradGuard no_grad;
  return torch::nn::functional::cross_entropy(model->forward(batch.images), batch.labels).item<double>();
}

// The lines of the steps that took a measurement carry its own raw estimates; the smoothed ones
// are their bias-corrected moving averages with AdaptDL's decay, theta = smoothing^(S x every)
// per measurement (S = global batch / lr.base_batch): a window of a fixed amount of data. Here
// S = N, every = 2, smoothing 0.999 (the default).
void check_averages_of_the_raw_estimates(const std::vector<nlohmann::json>& lines, const Config& config,
                                         int64_t global_batch) {
  const double theta = std::pow(0.999, double(global_batch) / double(config.lr.base_batch) * 2);
  ASSERT_EQ(config.metrics.noise_scale_decay, 0.999);
  double g2 = 0, trace = 0, weight = 0;
  int measured = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json& line = lines[i];
    const bool took_one = i % 2 == 0;  // steps 1, 3, 5, ... (0, 2, 4, ... counted from 0)
    ASSERT_EQ(line["noise_grad_sq_raw"].is_number(), took_one) << line;
    ASSERT_EQ(line["noise_trace_sigma_raw"].is_number(), took_one) << line;
    if (took_one) {
      g2 = theta * g2 + (1 - theta) * line["noise_grad_sq_raw"].get<double>();
      trace = theta * trace + (1 - theta) * line["noise_trace_sigma_raw"].get<double>();
      weight = theta * weight + (1 - theta);
      ++measured;
    }
    EXPECT_NEAR(line["noise_grad_sq"].get<double>(), g2 / weight, 1e-12 * std::abs(g2 / weight)) << line;
    EXPECT_NEAR(line["noise_trace_sigma"].get<double>(), trace / weight, 1e-12 * std::abs(trace / weight)) << line;
  }
  EXPECT_GE(measured, 5);
}

// Rank 0's checks of the N-rank run's lines against the N/2 x 2 virtual run's. A failed
// ASSERT returns from here only, so the ranks still meet at the test's collectives.
void check_real_against_virtual(const fs::path& real_dir, const fs::path& virtual_dir, const TrainingResult& real,
                                const Config& config, const Dataset& data, int ranks) {
  const auto lines = read_lines(real_dir / "steps.jsonl");
  const auto virtual_lines = read_lines(virtual_dir / "steps.jsonl");
  const DistributedSampler sampler(data.train.size(), ranks, 0, config.train.local_batch, config.train.shuffle,
                                   uint64_t(config.train.seed), config.train.remainder);
  const LrSchedule schedule(config, sampler.global_batch(), sampler.steps_per_epoch());
  ASSERT_EQ(int64_t(lines.size()), real.step) << "a line per step";
  ASSERT_EQ(virtual_lines.size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json& line = lines[i];
    const int64_t step = int64_t(i) + 1;
    EXPECT_EQ(line.size(), 11u) << line;
    EXPECT_TRUE(line["gain"].is_null() && line["progress"].is_null()) << "AdaScale's only: " << line;
    EXPECT_EQ(line["step"], step);
    EXPECT_EQ(line["epoch"], (step - 1) / sampler.steps_per_epoch() + 1) << line;
    EXPECT_EQ(line["lr"], schedule.at(step - 1)) << line;  // the lr this step trained at
    EXPECT_TRUE(line["noise_grad_sq"].is_number() && line["noise_trace_sigma"].is_number()) << line;
    EXPECT_TRUE(line["b_simple"].is_number() || line["b_simple"].is_null()) << line;  // null while |G|^2 <= 0
    // Same samples, same updates; only the order of floating-point sums differs.
    const double loss = line["train_loss"], virtual_loss = virtual_lines[i]["train_loss"];
    EXPECT_NEAR(virtual_loss, loss, 1e-5 * loss) << "step " << step;
  }
  // Before any update, the loss over all ranks is the whole global batch's.
  const double first = first_global_batch_loss(config, data, sampler.global_batch());
  EXPECT_NEAR(lines[0]["train_loss"].get<double>(), first, 1e-6 * first);
  // The last line shows the estimate with every sample in: the summary's.
  for (const char* key : {"b_simple", "noise_grad_sq", "noise_trace_sigma"})
    EXPECT_EQ(lines.back()[key], real.summary[key]) << key;
  // Measured at steps 1, 3, 5, ...: the estimate moves only at the steps that took one.
  EXPECT_EQ(lines[1]["noise_grad_sq"], lines[0]["noise_grad_sq"]);
  EXPECT_NE(lines[2]["noise_grad_sq"], lines[1]["noise_grad_sq"]);
  check_averages_of_the_raw_estimates(lines, config, sampler.global_batch());
}

TEST(StepMetrics, EveryStepHasItsLrAndTheLossOverAllRanksRealOrVirtual) {
  auto world = make_mpi_world_communicator();
  const int n = world->size();
  ASSERT_EQ(n % 2, 0) << "needs an even number of ranks";
  const Dataset data = synthetic_dataset(200);
  const Config config = step_metrics_config();
  const std::string real_dir = shared_temp_dir(*world, "real");
  const TrainingResult real = train_into(real_dir, config, *world, data);

  // The first half of the ranks: N/2 processes of 2 virtual ranks each, the same global batch.
  on_half_world(*world, config, [&](Communicator& half, const Config& virtual_config) {
    const std::string virtual_dir = shared_temp_dir(half, "virtual");
    train_into(virtual_dir, virtual_config, half, data);
    if (world->rank() == 0) {
      check_real_against_virtual(real_dir, virtual_dir, real, config, data, n);
      fs::remove_all(virtual_dir);
    }
  });
  world->barrier();
  if (world->rank() == 0) fs::remove_all(real_dir);
}

TEST(StepMetrics, EveryNthStepAndOffByDefault) {
  auto world = make_mpi_world_communicator();
  const Dataset data = synthetic_dataset(200);
  Config config = step_metrics_config();
  config.metrics.every_steps = 5;
  const std::string dir = shared_temp_dir(*world, "every5");
  const TrainingResult result = train_into(dir, config, *world, data);
  config.metrics.every_steps = Config{}.metrics.every_steps;
  const std::string off = shared_temp_dir(*world, "off");
  train_into(off, config, *world, data);
  if (world->rank() == 0) {
    const auto lines = read_lines(fs::path(dir) / "steps.jsonl");
    EXPECT_EQ(int64_t(lines.size()), result.step / 5);
    for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["step"], 5 * int64_t(i + 1));
    EXPECT_FALSE(fs::exists(fs::path(off) / "steps.jsonl")) << "metrics.every_steps is 0 by default";
    fs::remove_all(dir);
    fs::remove_all(off);
  }
}

// Sync batch norm all-reduces the hidden layer's statistics twice a step: in forward the sum, the
// sum of squares and the count of its 128 features (257 float64), in backward sum(dy) and
// sum(dy * x_hat) (256 float64). They are the step's communication as the gradients are, so the
// bytes per step exceed local batch norm's (the same parameters) by exactly those 4,104 bytes.
TEST(StepMetrics, SyncBatchNormsAllReducesAreCommunication) {
  auto world = make_mpi_world_communicator();
  const Dataset data = synthetic_dataset(200);
  Config config = step_metrics_config();
  config.metrics.every_steps = 0;
  config.model.batch_norm = BatchNorm::Local;
  const std::string local_dir = shared_temp_dir(*world, "bn-local");
  const TrainingResult local = train_into(local_dir, config, *world, data);
  config.model.batch_norm = BatchNorm::Sync;
  const std::string sync_dir = shared_temp_dir(*world, "bn-sync");
  const TrainingResult sync = train_into(sync_dir, config, *world, data);
  const double extra = sync.summary["comm_bytes_per_step"].get<double>() -
                       local.summary["comm_bytes_per_step"].get<double>();
  EXPECT_EQ(extra, (257 + 256) * 8.0) << sync.summary["comm_bytes_per_step"];
  EXPECT_GT(sync.summary["comm_seconds"].get<double>(), 0.0);
  world->barrier();
  if (world->rank() == 0) {
    fs::remove_all(local_dir);
    fs::remove_all(sync_dir);
  }
}

// A run stopped at step S whose newest checkpoint is at C < S (as when a job dies between
// checkpoints): its steps.jsonl already holds lines C+1..S. Resuming from C drops them and
// writes them again, so the file ends byte for byte as an uninterrupted run's.
TEST(StepMetrics, ResumeKeepsEachStepOnce) {
  auto world = make_mpi_world_communicator();
  const Dataset data = synthetic_dataset(200);
  Config config = step_metrics_config();
  config.checkpoint.every_steps = 4;
  const std::string whole_dir = shared_temp_dir(*world, "whole");
  const TrainingResult whole = train_into(whole_dir, config, *world, data);

  const std::string dir = shared_temp_dir(*world, "resumed");
  const fs::path checkpoints = fs::path(dir) / "checkpoints";
  config.train.stop_after_steps = whole.step / 2 + 1;
  ASSERT_NE(config.train.stop_after_steps % 4, 0) << "the stop must fall between two step checkpoints";
  {
    std::optional<RunDirectory> run_dir;
    std::optional<CheckpointStore> store;
    if (world->rank() == 0) {
      run_dir.emplace(RunDirectory::create(dir));
      store.emplace(checkpoints, 5);
    }
    Trainer first(config, *world, data, torch::kCPU, {run_dir ? &*run_dir : nullptr, store ? &*store : nullptr});
    const TrainingResult stopped = first.run();
    ASSERT_EQ(stopped.outcome, Outcome::Stopped);
    if (world->rank() == 0) {
      EXPECT_EQ(int64_t(read_lines(fs::path(dir) / "steps.jsonl").size()), stopped.step);
      fs::remove(stopped.checkpoint);  // lost: the last lines are now past the newest checkpoint
    }
  }
  world->barrier();

  config.train.stop_after_steps = 0;
  const auto newest = CheckpointStore(checkpoints, 5).newest_valid([](const std::string& w) { ADD_FAILURE() << w; });
  ASSERT_TRUE(newest.has_value());
  const TrainingPosition at = position_of(newest->second, "checkpoint");
  ASSERT_LT(at.step, whole.step / 2 + 1);
  std::optional<RunDirectory> run_dir;
  if (world->rank() == 0) {
    run_dir.emplace(RunDirectory::reopen(dir, at.epoch, at.step));  // as set-up does on --resume
    EXPECT_EQ(int64_t(read_lines(fs::path(dir) / "steps.jsonl").size()), at.step);
  }
  Trainer resumed(config, *world, data, torch::kCPU, {run_dir ? &*run_dir : nullptr, nullptr});
  resumed.resume(newest->second);
  const TrainingResult rest = resumed.run();
  EXPECT_EQ(rest.step, whole.step);
  world->barrier();
  if (world->rank() == 0) {
    EXPECT_EQ(read_text(fs::path(dir) / "steps.jsonl"), read_text(fs::path(whole_dir) / "steps.jsonl"));
    EXPECT_EQ(int64_t(read_lines(fs::path(dir) / "steps.jsonl").size()), whole.step);
    fs::remove_all(dir);
    fs::remove_all(whole_dir);
  }
}


// metrics.eval_every_steps: a line of evals.jsonl every N steps and at each epoch's end, each the
// test accuracy of the model at that step; metrics.target_accuracy: the summary names the first
// that reached it. Evaluating changes nothing in training (the parameters end bitwise as with
// epoch-end evaluations only), local SGD's included, whose replicas are averaged only for it.
TEST(Evaluations, EveryNStepsWithTheFirstThatReachesTheTarget) {
  auto world = make_mpi_world_communicator();
  const Dataset data = synthetic_dataset(200);
  for (const int64_t local_sgd : {int64_t(0), int64_t(3)}) {
    Config config = step_metrics_config();
    config.train.epochs = 4;
    config.comm.local_sgd_period = local_sgd;
    config.comm.local_sgd_start_step = 2;
    const std::string plain_dir = shared_temp_dir(*world, "eval-plain");
    const TrainingResult plain = train_into(plain_dir, config, *world, data);
    config.metrics.eval_every_steps = 2;
    config.metrics.target_accuracy = 0.2;  // synthetic labels: 10 classes, chance is 0.1
    const std::string dir = shared_temp_dir(*world, "eval");
    const TrainingResult result = train_into(dir, config, *world, data);
    EXPECT_EQ(result.summary["parameters_crc32"], plain.summary["parameters_crc32"]) << "local SGD " << local_sgd;
    // train.stop_at_target: the same run, ended (completed) at the evaluation that reached the target.
    config.train.stop_at_target = true;
    const std::string stopped_dir = shared_temp_dir(*world, "eval-stopped");
    const TrainingResult stopped = train_into(stopped_dir, config, *world, data);
    EXPECT_EQ(stopped.outcome, Outcome::Completed);
    EXPECT_EQ(stopped.summary["steps"], result.summary["steps_to_target"]);
    EXPECT_EQ(stopped.summary["steps_to_target"], result.summary["steps_to_target"]);
    EXPECT_LT(stopped.summary["steps"].get<int64_t>(), result.summary["steps"].get<int64_t>());
    if (world->rank() == 0) fs::remove_all(stopped_dir);
    if (world->rank() == 0) {
      const auto evals = read_lines(fs::path(dir) / "evals.jsonl");
      const int64_t per_epoch = 200 / (8 * world->size());
      ASSERT_FALSE(evals.empty());
      int64_t expected = 0, last = 0;
      for (int64_t step = 1; step <= result.step; ++step)
        if (step % 2 == 0 || step % per_epoch == 0) ++expected;
      EXPECT_EQ(int64_t(evals.size()), expected);
      EXPECT_EQ(evals.back()["test_acc"], result.summary["final_test_accuracy"]);
      nlohmann::json first;
      for (const auto& line : evals) {
        EXPECT_GT(line["step"].get<int64_t>(), last) << line;
        last = line["step"];
        EXPECT_EQ(line["samples"], line["step"].get<int64_t>() * 8 * world->size());
        if (first.is_null() && line["test_acc"].get<double>() >= 0.2) first = line;
      }
      ASSERT_FALSE(first.is_null()) << "the target was never reached: pick a lower one";
      EXPECT_EQ(result.summary["steps_to_target"], first["step"]);
      EXPECT_EQ(result.summary["samples_to_target"], first["samples"]);
      EXPECT_EQ(result.summary["seconds_to_target"], first["train_seconds"]);
      EXPECT_TRUE(plain.summary["steps_to_target"].is_null()) << "no target, no steps to it";
      fs::remove_all(dir);
      fs::remove_all(plain_dir);
    }
    world->barrier();
  }
}

}  // namespace
}  // namespace ddp
