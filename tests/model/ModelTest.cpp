// The model family (model.name): each model's shapes and parameter count, logits of the right
// shape, batch norm where the model puts it, mlp [128] being simple_nn draw for draw, and sync
// batch norm on a conv's output equal to torch's batch norm over the same batch.
#include <gtest/gtest.h>

#include "model/LeNet5.h"
#include "model/Mlp.h"
#include "model/Model.h"
#include "model/SimpleNN.h"

namespace ddp {
namespace {

ModelConfig model_config(ModelName name, std::vector<int64_t> hidden = {128}, BatchNorm bn = BatchNorm::None) {
  ModelConfig config;
  config.name = name;
  config.hidden = std::move(hidden);
  config.batch_norm = bn;
  return config;
}

TEST(Models, ParameterCountsAndShapes) {
  EXPECT_EQ(parameter_count(*make_model(model_config(ModelName::SimpleNN), 1)), 101770);
  // 784*1024 + 1024 + 1024*1024 + 1024 + 1024*10 + 10
  EXPECT_EQ(parameter_count(*make_model(model_config(ModelName::Mlp, {1024, 1024}), 1)), 1863690);
  // LeCun et al.'s count for this form: 156 + 2,416 + 48,120 + 10,164 + 850
  const Model lenet = make_model(model_config(ModelName::LeNet5), 1);
  EXPECT_EQ(parameter_count(*lenet), 61706);
  EXPECT_EQ(parameter_shapes(*lenet),
            "conv1.weight [6, 1, 5, 5], conv1.bias [6], conv2.weight [16, 6, 5, 5], conv2.bias [16], "
            "fc1.weight [120, 400], fc1.bias [120], fc2.weight [84, 120], fc2.bias [84], fc3.weight [10, 84], "
            "fc3.bias [10]");
  EXPECT_EQ(describe(model_config(ModelName::Mlp, {1024, 1024})), "mlp [1024, 1024]");
  EXPECT_EQ(describe(model_config(ModelName::LeNet5)), "lenet5");
}

TEST(Models, EachGivesTenLogitsPerImageInTrainingAndEval) {
  for (const ModelConfig& config : {model_config(ModelName::SimpleNN), model_config(ModelName::Mlp, {64, 32, 16}),
                                    model_config(ModelName::LeNet5),
                                    model_config(ModelName::LeNet5, {128}, BatchNorm::Local)}) {
    const Model model = make_model(config, 3);
    const torch::Tensor images = torch::rand({5, 784});
    EXPECT_EQ(model->forward(images).sizes(), torch::IntArrayRef({5, 10})) << describe(config);
    model->eval();
    EXPECT_EQ(model->forward(images).sizes(), torch::IntArrayRef({5, 10})) << describe(config);
  }
}

// A BN after each hidden layer: weight and bias per feature or channel, and the other layers
// drawn as without it.
TEST(Models, BatchNormAfterEachHiddenLayerDrawsNothing) {
  const Model plain = make_model(model_config(ModelName::LeNet5), 9);
  const Model normed = make_model(model_config(ModelName::LeNet5, {128}, BatchNorm::Sync), 9);
  EXPECT_EQ(parameter_count(*normed), parameter_count(*plain) + 2 * (6 + 16 + 120 + 84));
  EXPECT_TRUE(torch::equal(plain->named_parameters()["fc3.weight"], normed->named_parameters()["fc3.weight"]));
  const Model mlp = make_model(model_config(ModelName::Mlp, {32, 16}, BatchNorm::Local), 9);
  EXPECT_EQ(parameter_count(*mlp), parameter_count(*make_model(model_config(ModelName::Mlp, {32, 16}), 9)) +
                                       2 * (32 + 16));
}

// mlp [128] has simple_nn's layers, names and draws: the same model.
TEST(Models, MlpOf128IsSimpleNN) {
  for (const BatchNorm bn : {BatchNorm::None, BatchNorm::Local}) {
    const Model simple = make_model(model_config(ModelName::SimpleNN, {128}, bn), 4);
    const Model mlp = make_model(model_config(ModelName::Mlp, {128}, bn), 4);
    EXPECT_EQ(parameter_shapes(*mlp), parameter_shapes(*simple));
    const auto p = simple->parameters(), q = mlp->parameters();
    ASSERT_EQ(p.size(), q.size());
    for (size_t k = 0; k < p.size(); ++k) EXPECT_TRUE(torch::equal(p[k], q[k])) << "parameter " << k;
    const torch::Tensor images = torch::rand({6, 784});
    EXPECT_TRUE(torch::equal(simple->forward(images), mlp->forward(images)));
  }
}

// One replica's sync batch norm on a conv's output [batch, channels, h, w] is torch's training-mode
// batch norm: the outputs, the input's gradient and the running statistics (unbiased over batch x h x w).
TEST(SyncBatchNorm, OnAConvOutputIsTorchsBatchNorm) {
  torch::manual_seed(2);
  torch::nn::BatchNorm2d ours(4), theirs(4);
  {
    torch::NoGradGuard no_grad;
    ours->weight.uniform_(0.5, 1.5), ours->bias.uniform_(-0.5, 0.5);
    theirs->weight.copy_(ours->weight), theirs->bias.copy_(ours->bias);
  }
  const torch::Tensor x = (torch::randn({3, 4, 5, 5}) * 2 + 1).requires_grad_();
  const torch::Tensor y_ours = sync_batch_norm(x, *ours, {});
  const torch::Tensor g_ours = torch::autograd::grad({(y_ours * y_ours.detach().sin()).sum()}, {x})[0];
  const torch::Tensor y_theirs = theirs->forward(x);
  const torch::Tensor g_theirs = torch::autograd::grad({(y_theirs * y_theirs.detach().sin()).sum()}, {x})[0];
  EXPECT_TRUE(torch::allclose(y_ours, y_theirs, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(g_ours, g_theirs, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(ours->running_mean, theirs->running_mean, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(ours->running_var, theirs->running_var, 1e-5, 1e-6));
}

}  // namespace
}  // namespace ddp
