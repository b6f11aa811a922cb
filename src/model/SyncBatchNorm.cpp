#include "model/SyncBatchNorm.h"

namespace ddp {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The sum over replicas travels inside the autograd context, which holds only IValues.
struct SumHolder : torch::CustomClassHolder {
  explicit SumHolder(ReplicaSum s) : sum(std::move(s)) {}
  ReplicaSum sum;
};

void sum_over_replicas(const ReplicaSum& sum, Tensor& tensor) {
  if (sum) sum(tensor);
}

// The algebra. Replica r holds rows I_r of the global batch of N rows; mu and var are the
// global batch's, x_hat_i = (x_i - mu) * s with s = (var + eps)^-1/2, and y_i = w * x_hat_i + b.
// For a loss L with g_i = dL/dy_i (all per feature; sums over all N rows):
//   dL/dx_i = w * s * (g_i - sum_j g_j / N - x_hat_i * sum_j (g_j * x_hat_j) / N)
//   dL/dw = sum_j g_j * x_hat_j,   dL/db = sum_j g_j
// Let L = sum_r L_r, where L_r depends only on replica r's outputs: then g_i = dL_r/dy_i is
// known on the replica that holds row i, and the two sums over all rows are the sums over
// replicas of each replica's own sums. So backward sums sum(g) and sum(g * x_hat) over
// replicas, divides by the global count, and gives each replica the exact dL/dx_i of its
// rows; dL/dw and dL/db it leaves as the replica's own share (no sum), and every parameter
// gradient is likewise replica r's share of dL/dtheta, the shares adding up to it.
// DDP: L_r is the mean loss over r's b rows and replicas average their gradients, so the
// result is (1/R) dL/dtheta = d/dtheta of (1/R) sum_r L_r, the mean loss over the global
// batch: exactly one replica with batch N.
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  // Returns y and, not differentiable, the global batch's mean and unbiased variance (for
  // the running statistics).
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                               double eps, const ReplicaSum& sum) {
    const int64_t features = x.size(1);
    const auto dtype = x.scalar_type();
    // Sums in float64: var = E[x^2] - E[x]^2 cancels badly in float32 when |mean| >> std.
    // (A step is tens of small operations; fewer of them is what makes this faster.)
    const Tensor x64 = x.to(torch::kFloat64);
    Tensor moments = torch::cat({x64.sum(0), x64.square().sum(0), torch::full({1}, double(x.size(0)), x64.options())});
    sum_over_replicas(sum, moments);
    const Tensor count = moments.narrow(0, 2 * features, 1);
    const Tensor averages = moments.narrow(0, 0, 2 * features).view({2, features}) / count;  // E[x], E[x^2]
    const Tensor mean = averages[0];
    const Tensor var = torch::addcmul(averages[1], mean, mean, -1.0).clamp_min_(0.0);
    const Tensor invstd = (var + eps).rsqrt_().to(dtype);
    const Tensor x_hat = (x - mean.to(dtype)).mul_(invstd);
    const Tensor y = torch::addcmul(bias, x_hat, weight);
    ctx->save_for_backward({x_hat, invstd, weight, count});
    ctx->saved_data["sum"] = c10::IValue::make_capsule(c10::make_intrusive<SumHolder>(sum));
    const Tensor mean_out = mean.to(dtype), var_out = (var * count / (count - 1)).to(dtype);
    ctx->mark_non_differentiable({mean_out, var_out});
    return {y, mean_out, var_out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &x_hat = saved[0], &invstd = saved[1], &weight = saved[2], &count = saved[3];
    const Tensor& dy = grads[0];
    const Tensor sum_dy = dy.sum(0), sum_dy_x_hat = (dy * x_hat).sum(0);  // this replica's rows
    Tensor sums = torch::stack({sum_dy, sum_dy_x_hat}).to(torch::kFloat64);
    const auto holder = ctx->saved_data["sum"].toCapsule();
    sum_over_replicas(static_cast<SumHolder&>(*holder).sum, sums);
    const Tensor means = (sums / count).to(dy.scalar_type());  // mean(dy), mean(dy * x_hat)
    // w * invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat)), in three passes over the batch.
    const Tensor dx = (dy - means[0]).addcmul_(x_hat, means[1], -1.0).mul_(invstd * weight);
    return {dx, sum_dy_x_hat, sum_dy, Tensor(), Tensor()};
  }
};

template <class Bn>
Tensor sync_batch_norm_rows(const Tensor& x, Bn& bn, const ReplicaSum& sum, bool update_running_stats) {
  const variable_list out = SyncBatchNormFunction::apply(x, bn.weight, bn.bias, bn.options.eps(), sum);
  if (update_running_stats) {
    // As torch's batch norm: running = (1 - momentum) * running + momentum * batch statistic.
    torch::NoGradGuard no_grad;
    const double momentum = bn.options.momentum().value();
    bn.running_mean.lerp_(out[1], momentum);
    bn.running_var.lerp_(out[2], momentum);
    bn.num_batches_tracked.add_(1);
  }
  return out[0];
}

}  // namespace

Tensor sync_batch_norm(const Tensor& x, torch::nn::BatchNorm1dImpl& bn, const ReplicaSum& sum,
                       bool update_running_stats) {
  return sync_batch_norm_rows(x, bn, sum, update_running_stats);
}

Tensor sync_batch_norm(const Tensor& x, torch::nn::BatchNorm2dImpl& bn, const ReplicaSum& sum,
                       bool update_running_stats) {
  // Each position of each image a row of channels: [batch * height * width, channels], and back.
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const Tensor rows = x.permute({0, 2, 3, 1}).reshape({-1, channels});
  const Tensor y = sync_batch_norm_rows(rows, bn, sum, update_running_stats);
  return y.view({batch, height, width, channels}).permute({0, 3, 1, 2}).contiguous();
}

}  // namespace ddp
