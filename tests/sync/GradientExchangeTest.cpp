// The gradient exchanges on one rank, where the mean over ranks is the rank's own gradient:
// what each mode does to it (PowerSGD: exact at full rank, error feedback conserving the sum, a
// refused step leaving no trace; fp16/bf16: the cast, the extra slots untouched), and local
// SGD's averaging period. Across ranks: tests/sync/CompressionMpiTest.cpp.
#include <gtest/gtest.h>

#include "SingleRank.h"
#include "sync/GradientSynchronizer.h"
#include "sync/HalfPrecisionAllreduce.h"
#include "sync/ModelAverager.h"
#include "sync/PowerSgd.h"

namespace ddp {
namespace {

using testing_sync::SingleRankCommunicator;

// Parameters of SimpleNN's shapes (or others), with gradients in one set of buckets.
struct Model {
  std::vector<torch::Tensor> parameters;
  GradientBuckets buckets;
  Model(const std::vector<std::vector<int64_t>>& shapes, int64_t extra_slots)
      : parameters(make(shapes)), buckets(parameters, size_t(1) << 30, extra_slots) {}
  static std::vector<torch::Tensor> make(const std::vector<std::vector<int64_t>>& shapes) {
    std::vector<torch::Tensor> p;
    for (const auto& shape : shapes) p.push_back(torch::zeros(shape).requires_grad_());
    return p;
  }
  // Fills every gradient with normal noise from `seed` (the same values each call with it).
  void random_gradients(uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    for (auto& p : parameters) p.mutable_grad().copy_(torch::randn(p.sizes()));
  }
  std::vector<torch::Tensor> gradients() const {
    std::vector<torch::Tensor> g;
    for (const auto& p : parameters) g.push_back(p.grad().clone());
    return g;
  }
};

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

SyncOptions powersgd(int64_t rank, double min_ratio = 2.0) {
  SyncOptions options;
  options.compression = Compression::PowerSgd;
  options.powersgd_rank = rank;
  options.powersgd_min_ratio = min_ratio;
  options.seed = 3;
  return options;
}

// Three warm-started steps of `exchange` on one rank leave every gradient as it was (shape and values).
void expect_exact_for_three_steps(PowerSgd& exchange, Model& model) {
  for (uint64_t step = 0; step < 3; ++step) {
    model.random_gradients(step);
    const auto before = model.gradients();
    exchange.exchange(model.buckets, int64_t(step));
    exchange.commit();
    const auto after = model.gradients();
    for (size_t k = 0; k < before.size(); ++k) {
      EXPECT_EQ(after[k].sizes(), before[k].sizes());
      EXPECT_LT(relative_error(after[k], before[k]), 1e-5) << "parameter " << k << ", step " << step;
    }
  }
}

TEST(PowerSgd, FullRankIsExact) {
  SingleRankCommunicator comm;
  Model model({{6, 4}, {6}, {3, 6}}, 4);
  PowerSgd exchange(comm, powersgd(6, /*min_ratio=*/0.0), model.parameters);
  ASSERT_EQ(exchange.compressed_elements(), 6 * 4 + 3 * 6) << "min ratio 0: every matrix compressed";
  expect_exact_for_three_steps(exchange, model);
}

// A conv weight [out, in, k, k] travels as the matrix [out, in*k*k], as powerSGD_hook views it
// (lenet5's two convs): at full rank, exact.
TEST(PowerSgd, FullRankIsExactOnAConvWeight) {
  SingleRankCommunicator comm;
  Model model({{6, 1, 5, 5}, {6}, {16, 6, 5, 5}, {16}}, 4);
  PowerSgd exchange(comm, powersgd(16, /*min_ratio=*/0.0), model.parameters);
  ASSERT_EQ(exchange.compressed_elements(), 6 * 25 + 16 * 150);
  ASSERT_EQ(exchange.factor_elements(), (6 + 25) * 6 + (16 + 150) * 16) << "ranks min(rows, cols): 6 and 16";
  expect_exact_for_three_steps(exchange, model);
  // Below full rank the conv weight is approximated, not passed through.
  PowerSgd rank_two(comm, powersgd(2, 0.0), model.parameters);
  model.random_gradients(7);
  const auto before = model.gradients();
  rank_two.exchange(model.buckets, 0);
  EXPECT_GT(relative_error(model.gradients()[2], before[2]), 0.1);
}

// What --dry-run reports (exchange_bytes, from the shapes alone) is what each mode's exchange
// hands to collectives, before and after its start step.
TEST(ExchangeBytes, AreWhatEachModeSends) {
  SingleRankCommunicator comm;
  std::vector<SyncOptions> modes(4);
  modes[1].compression = Compression::Fp16;
  modes[2].compression = Compression::Bf16;
  modes[3] = powersgd(2);
  for (SyncOptions& options : modes) {
    options.compression_start_step = 1;
    Model model({{6, 1, 5, 5}, {6}, {16, 6, 5, 5}, {16}, {120, 400}, {120}, {10, 120}, {10}}, 4);
    const auto exchange = make_gradient_exchange(comm, options, model.parameters);
    for (int64_t step = 0; step < 2; ++step) {
      model.random_gradients(uint64_t(step));
      EXPECT_EQ(exchange->exchange(model.buckets, step), exchange_bytes(options, model.parameters, 4, step))
          << to_string(options.compression) << ", step " << step;
      exchange->commit();
    }
  }
}

TEST(PowerSgd, ARankOneGradientIsRecoveredByRankOne) {
  SingleRankCommunicator comm;
  Model model({{20, 30}}, 0);
  PowerSgd exchange(comm, powersgd(1), model.parameters);
  torch::manual_seed(1);
  const torch::Tensor m = torch::outer(torch::randn({20}), torch::randn({30}));
  model.parameters[0].mutable_grad().copy_(m);
  exchange.exchange(model.buckets, 0);
  EXPECT_LT(relative_error(model.parameters[0].grad(), m), 1e-5);
}

// Error feedback loses nothing: after T steps, what was applied plus the error still held is
// the sum of the T gradients, although each step sends a rank-1 approximation.
TEST(PowerSgd, ErrorFeedbackConservesTheSum) {
  SingleRankCommunicator comm;
  Model model({{40, 50}, {40}}, 4);
  PowerSgd exchange(comm, powersgd(1), model.parameters);
  torch::Tensor sent = torch::zeros({40, 50}), applied = torch::zeros({40, 50});
  double worst_step = 0;
  for (uint64_t step = 0; step < 20; ++step) {
    model.random_gradients(100 + step);
    sent += model.parameters[0].grad();
    const torch::Tensor g = model.parameters[0].grad().clone();
    exchange.exchange(model.buckets, int64_t(step));
    exchange.commit();
    applied += model.parameters[0].grad();
    worst_step = std::max(worst_step, relative_error(model.parameters[0].grad(), g));
  }
  EXPECT_GT(worst_step, 0.5) << "rank 1 of a random 40x50 matrix should be a poor approximation";
  const torch::Tensor error = exchange.state().at("error.0");
  EXPECT_LT(relative_error(applied + error, sent), 1e-5);
}

// A step whose update is refused (a NaN on some rank) must leave the state as it was: the
// steps after it go on exactly as if it had never been taken.
TEST(PowerSgd, AnUncommittedStepLeavesNoTrace) {
  SingleRankCommunicator comm;
  Model a({{12, 9}, {12}}, 4), b({{12, 9}, {12}}, 4);
  PowerSgd ea(comm, powersgd(2), a.parameters), eb(comm, powersgd(2), b.parameters);
  for (uint64_t step = 0; step < 4; ++step) {
    if (step == 2) {  // b takes one step more, with a NaN, and does not commit it
      b.random_gradients(999);
      b.parameters[0].mutable_grad()[0][0] = std::numeric_limits<float>::quiet_NaN();
      eb.exchange(b.buckets, int64_t(step));
    }
    a.random_gradients(step);
    b.random_gradients(step);
    ea.exchange(a.buckets, int64_t(step));
    eb.exchange(b.buckets, int64_t(step));
    ea.commit();
    eb.commit();
    EXPECT_TRUE(torch::equal(a.parameters[0].grad(), b.parameters[0].grad())) << "step " << step;
  }
  for (const auto& [name, tensor] : ea.state()) EXPECT_TRUE(torch::equal(tensor, eb.state().at(name))) << name;
}

TEST(PowerSgd, StateRoundTripsAndIsRefusedWhenItDoesNotFit) {
  SingleRankCommunicator comm;
  Model a({{12, 9}}, 0), b({{12, 9}}, 0);
  PowerSgd ea(comm, powersgd(2), a.parameters), eb(comm, powersgd(2), b.parameters);
  EXPECT_EQ(ea.state().count("q"), 0u) << "no Q before the first applied compressed step";
  for (uint64_t step = 0; step < 3; ++step) {
    a.random_gradients(step);
    ea.exchange(a.buckets, int64_t(step));
    ea.commit();
  }
  ExchangeState saved;
  for (const auto& [name, t] : ea.state()) saved[name] = t.clone();
  eb.set_state(saved);
  a.random_gradients(7);
  b.random_gradients(7);
  ea.exchange(a.buckets, 3);
  eb.exchange(b.buckets, 3);
  EXPECT_TRUE(torch::equal(a.parameters[0].grad(), b.parameters[0].grad()));
  Model c({{12, 8}}, 0);
  PowerSgd ec(comm, powersgd(2), c.parameters);
  EXPECT_THROW(ec.set_state(saved), std::runtime_error);
}

// Which matrices travel raw: SimpleNN's second layer (10 x 128) shrinks 4.6x at rank 2,
// 2.3x at rank 4 and 1.2x at rank 8, against the default min ratio 2.
TEST(PowerSgd, MatricesThatWouldNotShrinkEnoughTravelRaw) {
  SingleRankCommunicator comm;
  Model simple_nn({{128, 784}, {128}, {10, 128}, {10}}, 4);
  const int64_t vectors = 128 + 10;
  EXPECT_EQ(PowerSgd(comm, powersgd(2), simple_nn.parameters).raw_elements(), vectors);
  EXPECT_EQ(PowerSgd(comm, powersgd(4), simple_nn.parameters).raw_elements(), vectors);
  EXPECT_EQ(PowerSgd(comm, powersgd(8), simple_nn.parameters).raw_elements(), vectors + 1280);
  EXPECT_EQ(PowerSgd(comm, powersgd(2), simple_nn.parameters).factor_elements(), (128 + 784 + 10 + 128) * 2);
}

TEST(PowerSgd, PlainAllreduceBeforeTheStartStep) {
  SingleRankCommunicator comm;
  Model model({{30, 40}}, 0);
  SyncOptions options = powersgd(1);
  options.compression_start_step = 5;
  PowerSgd exchange(comm, options, model.parameters);
  model.random_gradients(1);
  const torch::Tensor g = model.parameters[0].grad().clone();
  EXPECT_TRUE(exchange.exact(4));
  EXPECT_EQ(exchange.exchange(model.buckets, 4), 30 * 40 * 4);
  EXPECT_TRUE(torch::equal(model.parameters[0].grad(), g));
  EXPECT_FALSE(exchange.exact(5));
  EXPECT_EQ(exchange.exchange(model.buckets, 5), (30 + 40) * 1 * 4) << "P and Q only, nothing raw";
}

TEST(HalfPrecision, GradientsAreCastAndTheExtraSlotsAreNot) {
  SingleRankCommunicator comm;
  for (const auto type : {torch::kFloat16, torch::kBFloat16}) {
    Model model({{50}}, 4);
    HalfPrecisionAllreduce exchange(comm, type, 0);
    model.parameters[0].mutable_grad().fill_(1.0 / 3.0);
    model.buckets.extras().fill_(1.0 / 3.0);
    EXPECT_EQ(exchange.exchange(model.buckets, 0), 50 * 2 + 4 * 4);
    const float cast = torch::tensor({1.0f / 3.0f}).to(type).to(torch::kFloat32).item<float>();
    EXPECT_NE(cast, 1.0f / 3.0f);
    EXPECT_TRUE(model.parameters[0].grad().eq(cast).all().item<bool>()) << c10::toString(type);
    EXPECT_TRUE(model.buckets.extras().eq(1.0f / 3.0f).all().item<bool>()) << c10::toString(type);
  }
}

TEST(LocalSgd, AveragesEveryPeriodStepsAfterItsStart) {
  SingleRankCommunicator comm;
  Model model({{5, 3}, {5}}, 4);
  ModelAverager averager(comm, model.parameters, /*period=*/4, /*start_step=*/10);
  std::vector<int64_t> averaged;
  for (int64_t step = 0; step < 30; ++step) {
    EXPECT_EQ(averager.local(step), step >= 10);
    if (averager.after_step(step) > 0) averaged.push_back(step);
  }
  EXPECT_EQ(averaged, (std::vector<int64_t>{13, 17, 21, 25, 29})) << "after every 4th local step";
  EXPECT_EQ(averager.average_if_local(10), 0) << "no local step taken yet";
  EXPECT_EQ(averager.average_if_local(11), (15 + 5) * 4);
}

// An epoch's end (or an evaluation) right after an averaging finds the parameters equal: it
// sends nothing, where it used to all-reduce them again (wasted bytes, and an ulp moved on a
// rank count that is not a power of two).
TEST(LocalSgd, AveragesNothingTheRanksAlreadyAgreeOn) {
  SingleRankCommunicator comm;
  Model model({{5, 3}, {5}}, 0);
  ModelAverager averager(comm, model.parameters, /*period=*/4, /*start_step=*/0);
  for (int64_t step = 0; step < 8; ++step) averager.after_step(step);
  EXPECT_EQ(comm.allreduces, 2) << "after steps 4 and 8";
  EXPECT_FALSE(averager.may_differ(8)) << "the 8th step averaged";
  EXPECT_EQ(averager.average_if_local(8), 0) << "an epoch ending on the 8th step";
  averager.after_step(8);
  EXPECT_EQ(averager.average_if_local(9), (15 + 5) * 4) << "an epoch ending on the 9th: one local step";
  EXPECT_EQ(averager.average_if_local(9), 0) << "the evaluation after it";
  bool used = false;
  averager.with_mean(9, [&] { used = true; });
  EXPECT_TRUE(used);
  EXPECT_EQ(comm.allreduces, 3);
}

// A mid-epoch evaluation averages a copy: the parameters are each rank's own again after it, so
// the epoch's end at the same step still averages them for good.
TEST(LocalSgd, AnEvaluationsMeanIsPutBack) {
  SingleRankCommunicator comm;
  Model model({{5, 3}}, 0);
  ModelAverager averager(comm, model.parameters, /*period=*/4, /*start_step=*/0);
  averager.after_step(0);
  {
    torch::NoGradGuard no_grad;
    model.parameters[0].fill_(2.0);
  }
  averager.with_mean(1, [&] {
    torch::NoGradGuard no_grad;
    model.parameters[0].fill_(7.0);  // stands for a change the evaluation would see, then lose
  });
  EXPECT_TRUE(model.parameters[0].eq(2.0).all().item<bool>());
  EXPECT_EQ(averager.average_if_local(1), 15 * 4) << "the copy's averaging did not count";
}

// A compressed step refused for a NaN, then a local SGD step: the local step exchanged nothing,
// so its commit must not install the refused step's PowerSGD state (it did).
TEST(GradientSynchronizer, ALocalStepDoesNotCommitARefusedCompressedStep) {
  SingleRankCommunicator comm;
  Model refused({{12, 9}, {12}}, 4), clean({{12, 9}, {12}}, 4);
  SyncOptions options = powersgd(2);
  options.local_sgd_period = 4;
  options.local_sgd_start_step = 3;
  GradientSynchronizer sync_refused(comm, refused.parameters, size_t(1) << 30, 4, options);
  GradientSynchronizer sync_clean(comm, clean.parameters, size_t(1) << 30, 4, options);
  for (int64_t step = 0; step < 2; ++step) {
    refused.random_gradients(uint64_t(step));
    clean.random_gradients(uint64_t(step));
    sync_refused.synchronize(step);
    sync_clean.synchronize(step);
    sync_refused.commit();
    sync_clean.commit();
  }
  refused.random_gradients(999);  // step 2: compressed, refused (no commit)
  sync_refused.synchronize(2);
  for (auto* s : {&sync_refused, &sync_clean}) {  // step 3: local, applied
    s->synchronize(3);
    s->commit();
  }
  ASSERT_FALSE(sync_clean.state().empty());
  for (const auto& [name, tensor] : sync_clean.state())
    EXPECT_TRUE(torch::equal(tensor, sync_refused.state().at(name))) << name;
}

TEST(GradientSynchronizer, LocalSgdSendsOnlyTheFlagsPastItsStart) {
  SingleRankCommunicator comm;
  Model model({{5, 3}, {5}}, 0);
  SyncOptions options;
  options.local_sgd_period = 2;
  options.local_sgd_start_step = 3;
  GradientSynchronizer sync(comm, model.parameters, size_t(1) << 30, 4, options);
  EXPECT_EQ(sync.synchronize(2), (15 + 5 + 4) * 4);
  EXPECT_TRUE(sync.exact_mean(2));
  EXPECT_EQ(sync.synchronize(3), 4 * 4);
  EXPECT_FALSE(sync.exact_mean(3));
  EXPECT_FALSE(sync.estimated_mean(3));
  EXPECT_TRUE(sync.per_rank_state());
}

TEST(SyncOptions, AutoStartsAtTheEndOfTheWarmup) {
  Config config;
  config.comm.compression = Compression::PowerSgd;
  config.comm.local_sgd_period = 8;
  EXPECT_EQ(sync_options(config, 120).compression_start_step, 120);
  EXPECT_EQ(sync_options(config, 120).local_sgd_start_step, 120);
  config.comm.compression_start_step = 7;
  EXPECT_EQ(sync_options(config, 120).compression_start_step, 7);
}

}  // namespace
}  // namespace ddp
