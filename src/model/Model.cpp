#include "model/Model.h"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "model/LeNet5.h"
#include "model/Mlp.h"
#include "model/SimpleNN.h"

namespace ddp {

template <class Bn>
torch::Tensor ModelImpl::normalize_with(Bn& bn, const torch::Tensor& h, bool update_running_stats) {
  if (!is_training()) return bn.forward(h);  // the running statistics
  if (batch_norm_ == BatchNorm::Sync) return sync_batch_norm(h, bn, replica_sum_, update_running_stats);
  if (update_running_stats) return bn.forward(h);
  // This batch's own statistics, leaving the running ones where they are.
  return torch::batch_norm(h, bn.weight, bn.bias, {}, {}, /*training=*/true, 0.0, bn.options.eps(),
                           at::globalContext().userEnabledCuDNN());
}

torch::Tensor ModelImpl::normalize(torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& h, bool update_running_stats) {
  return normalize_with(bn, h, update_running_stats);
}

torch::Tensor ModelImpl::normalize(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& h, bool update_running_stats) {
  return normalize_with(bn, h, update_running_stats);
}

Model make_model_shapes(const ModelConfig& config) {
  switch (config.name) {
    case ModelName::Mlp:
      return std::make_shared<MlpImpl>(config.hidden, config.batch_norm);
    case ModelName::LeNet5:
      return std::make_shared<LeNet5Impl>(config.batch_norm);
    case ModelName::SimpleNN:
      break;
  }
  return std::make_shared<SimpleNNImpl>(config.batch_norm);
}

Model make_model(const ModelConfig& config, uint64_t seed) {
  torch::manual_seed(seed);
  return make_model_shapes(config);
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

std::string parameter_shapes(const torch::nn::Module& module, bool with_buffers) {
  std::string text;
  const auto buffers = with_buffers ? module.named_buffers() : torch::OrderedDict<std::string, torch::Tensor>();
  for (const auto& items : {module.named_parameters(), buffers})
    for (const auto& item : items)
      text += fmt::format("{}{} [{}]", text.empty() ? "" : ", ", item.key(), fmt::join(item.value().sizes(), ", "));
  return text;
}

}  // namespace ddp
