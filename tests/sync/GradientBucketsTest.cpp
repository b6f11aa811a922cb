#include "sync/GradientBuckets.h"

#include <gtest/gtest.h>

#include "model/SimpleNN.h"

namespace ddp {
namespace {

TEST(GradientBuckets, GradsAreViewsIntoBucketsInReverseOrder) {
  SimpleNN model = make_simple_nn(1);
  auto params = model->parameters();
  // 20 KB buckets: fc2 and fc1's bias (1418 floats) share one, fc1's weight (100352 floats) gets its own.
  GradientBuckets buckets(params, 20000);
  ASSERT_EQ(buckets.buffers().size(), 2u);
  EXPECT_EQ(buckets.numel(), parameter_count(*model));
  EXPECT_EQ(buckets.buffers()[0].numel(), 10 + 1280 + 128);  // backward produces these first
  EXPECT_EQ(buckets.buffers()[1].numel(), 784 * 128);
  for (auto& p : params) EXPECT_TRUE(p.grad().defined());
  buckets.buffers()[0].fill_(2.0);
  EXPECT_EQ(model->fc2->weight.grad().sum().item<float>(), 2.0f * 1280);
}

TEST(GradientBuckets, BackwardAccumulatesIntoTheBuckets) {
  SimpleNN model = make_simple_nn(2);
  GradientBuckets buckets(model->parameters(), size_t(25) << 20);
  ASSERT_EQ(buckets.buffers().size(), 1u);
  const torch::Tensor x = torch::randn({4, 784});
  torch::nn::functional::cross_entropy(model->forward(x), torch::tensor({1, 2, 3, 4})).backward();
  // Every gradient's storage is the bucket's.
  EXPECT_GT(buckets.buffers()[0].abs().sum().item<float>(), 0.0f);
  const auto* base = buckets.buffers()[0].data_ptr<float>();
  for (auto& p : model->parameters()) {
    const auto* g = p.grad().data_ptr<float>();
    EXPECT_TRUE(g >= base && g < base + buckets.numel());
  }
  buckets.zero();
  for (auto& p : model->parameters()) EXPECT_EQ(p.grad().abs().sum().item<float>(), 0.0f);
}

}  // namespace
}  // namespace ddp
