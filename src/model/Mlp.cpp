#include "model/Mlp.h"

namespace ddp {

MlpImpl::MlpImpl(const std::vector<int64_t>& hidden, BatchNorm batch_norm) : ModelImpl(batch_norm) {
  int64_t inputs = 28 * 28;
  for (size_t k = 0; k <= hidden.size(); ++k) {
    const int64_t outputs = k < hidden.size() ? hidden[k] : 10;
    linears.push_back(register_module("fc" + std::to_string(k + 1), torch::nn::Linear(inputs, outputs)));
    if (k < hidden.size() && batch_norm != BatchNorm::None)
      norms.push_back(register_module("bn" + std::to_string(k + 1), torch::nn::BatchNorm1d(outputs)));
    inputs = outputs;
  }
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x, bool update_running_stats) {
  torch::Tensor h = x;
  for (size_t k = 0; k + 1 < linears.size(); ++k) {
    h = linears[k](h);
    if (!norms.empty()) h = normalize(*norms[k], h, update_running_stats);
    h = torch::relu(h);
  }
  return linears.back()(h);
}

}  // namespace ddp
