#include "sync/PowerSgd.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>
#include <stdexcept>

namespace ddp {
namespace {

// Mixed into train.seed, so that Q's first draw is not the stream that initialised the model.
constexpr uint64_t kProjectionSeed = 0x506f776572534744ull;  // "PowerSGD"

}  // namespace

namespace {

// The same Gram-Schmidt on a contiguous float matrix in host memory, by hand: with r of 1 to 4
// the tensor version is some 40 small operations per matrix, whose dispatch costs more than
// their arithmetic (200 us of a 300 us step here). Sums in double.
void orthonormalize_host(float* a, int64_t rows, int64_t columns, double epsilon) {
  for (int64_t i = 0; i < columns; ++i) {
    double norm = 0;
    for (int64_t k = 0; k < rows; ++k) norm += double(a[k * columns + i]) * a[k * columns + i];
    const float inverse = float(1.0 / (std::sqrt(norm) + epsilon));
    for (int64_t k = 0; k < rows; ++k) a[k * columns + i] *= inverse;
    for (int64_t j = i + 1; j < columns; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < rows; ++k) dot += double(a[k * columns + i]) * a[k * columns + j];
      for (int64_t k = 0; k < rows; ++k) a[k * columns + j] -= float(dot) * a[k * columns + i];
    }
  }
}

}  // namespace

void orthonormalize_columns(torch::Tensor matrix, double epsilon) {
  if (matrix.is_cpu() && matrix.is_contiguous() && matrix.scalar_type() == torch::kFloat32)
    return orthonormalize_host(matrix.data_ptr<float>(), matrix.size(0), matrix.size(1), epsilon);
  const int64_t columns = matrix.size(1);
  for (int64_t i = 0; i < columns; ++i) {
    torch::Tensor column = matrix.narrow(1, i, 1);
    column.div_(column.norm() + epsilon);
    if (i + 1 < columns) {
      torch::Tensor rest = matrix.narrow(1, i + 1, columns - i - 1);
      rest.sub_((column * rest).sum(0, /*keepdim=*/true) * column);
    }
  }
}

PowerSgd::Selection PowerSgd::select(const SyncOptions& options, const std::vector<torch::Tensor>& parameters) {
  Selection selection;
  for (size_t k = 0; k < parameters.size(); ++k) {
    const torch::Tensor& w = parameters[k];
    if (w.dim() >= 2) {
      const int64_t rows = w.size(0), cols = w.numel() / rows;
      const int64_t rank = std::min({rows, cols, options.powersgd_rank});
      // As powerSGD_hook's _should_compress: only a matrix that shrinks enough is worth the arithmetic.
      if (double(rows * cols) > double((rows + cols) * rank) * options.powersgd_min_ratio) {
        selection.matrices.push_back({k, rows, cols, rank, selection.p_size, selection.q_size});
        selection.p_size += rows * rank;
        selection.q_size += cols * rank;
        continue;
      }
    }
    selection.raw.push_back(k);
  }
  return selection;
}

int64_t PowerSgd::message_elements(const SyncOptions& options, const std::vector<torch::Tensor>& parameters) {
  const Selection selection = select(options, parameters);
  int64_t elements = selection.p_size + selection.q_size;
  for (const size_t k : selection.raw) elements += parameters[k].numel();
  return elements;
}

PowerSgd::PowerSgd(Communicator& comm, const SyncOptions& options, const std::vector<torch::Tensor>& parameters)
    : comm_(comm),
      plain_(comm),
      start_step_(options.compression_start_step),
      seed_(options.seed ^ kProjectionSeed),
      parameters_(parameters) {
  Selection selection = select(options, parameters_);
  matrices_ = std::move(selection.matrices);
  raw_ = std::move(selection.raw);
  const auto options_of = parameters_.front().options();
  p_ = torch::zeros({selection.p_size}, options_of);
  q_ = torch::zeros({selection.q_size}, options_of);
  next_q_ = torch::zeros({selection.q_size}, options_of);
  for (const Matrix& m : matrices_) {
    error_.push_back(torch::zeros({m.rows, m.cols}, options_of));
    next_error_.push_back(torch::zeros({m.rows, m.cols}, options_of));
  }
}

torch::Tensor PowerSgd::gradient(const Matrix& m) const {
  return parameters_[m.parameter].mutable_grad().view({m.rows, m.cols});
}

int64_t PowerSgd::exchange(GradientBuckets& buckets, int64_t step) {
  pending_ = false;
  if (step < start_step_) return plain_.exchange(buckets, step);
  torch::NoGradGuard no_grad;
  add_error_feedback();
  start_from_q();
  for (const Matrix& m : matrices_) {
    torch::Tensor p = p_of(m);
    at::mm_out(p, gradient(m), q_of(next_q_, m));
  }
  exchange_raw_and_p(buckets);
  for (const Matrix& m : matrices_) orthonormalize_columns(p_of(m));
  for (const Matrix& m : matrices_) {
    torch::Tensor q = q_of(next_q_, m);
    at::mm_out(q, gradient(m).t(), p_of(m));
  }
  exchange_q();
  decompress();
  pending_ = true;
  return int64_t(raw_buffer_.nbytes() + p_.nbytes() + next_q_.nbytes());
}

// M <- M + e (the rank's error so far); the compensated M is kept to take the next error from.
void PowerSgd::add_error_feedback() {
  for (size_t i = 0; i < matrices_.size(); ++i) {
    torch::Tensor m = gradient(matrices_[i]);
    m.add_(error_[i]);
    next_error_[i].copy_(m);
  }
}

// This step's Q: the last applied step's (warm start), or, before any, the same random draw on
// every rank; orthonormalised either way, as powerSGD_hook does before each use.
void PowerSgd::start_from_q() {
  if (has_q_) {
    next_q_.copy_(q_);
  } else {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed_);
    next_q_.copy_(at::randn({next_q_.numel()}, generator, torch::TensorOptions(torch::kFloat32)));
  }
  for (const Matrix& m : matrices_) orthonormalize_columns(q_of(next_q_, m));
}

// The raw gradients and the extra slots, averaged, in one all-reduce posted with the P's sum.
void PowerSgd::exchange_raw_and_p(GradientBuckets& buckets) {
  torch::Tensor& extras = buckets.extras();
  if (!raw_buffer_.defined()) {
    int64_t size = extras.defined() ? extras.numel() : 0;
    for (size_t k : raw_) size += parameters_[k].numel();
    raw_buffer_ = torch::empty({size}, p_.options());
  }
  int64_t offset = 0;
  auto each_raw = [&](const std::function<void(torch::Tensor, torch::Tensor)>& apply) {
    offset = 0;
    for (size_t k : raw_) {
      torch::Tensor grad = parameters_[k].mutable_grad().view({-1});
      apply(raw_buffer_.narrow(0, offset, grad.numel()), grad);
      offset += grad.numel();
    }
    if (extras.defined()) apply(raw_buffer_.narrow(0, offset, extras.numel()), extras);
  };
  each_raw([](torch::Tensor slot, torch::Tensor value) { slot.copy_(value); });
  std::vector<torch::Tensor> messages{raw_buffer_, p_};
  comm_.allreduce(messages, ReduceOp::Sum);  // P needs no division: it is orthonormalised next
  raw_buffer_.div_(double(comm_.size()));
  each_raw([](torch::Tensor slot, torch::Tensor value) { value.copy_(slot); });
}

void PowerSgd::exchange_q() {
  comm_.allreduce(next_q_, ReduceOp::Sum);
  next_q_.div_(double(comm_.size()));
}

// M <- P^ Q^T, the approximation of the mean; the rank's next error is what its compensated M
// had beyond it.
void PowerSgd::decompress() {
  for (size_t i = 0; i < matrices_.size(); ++i) {
    const Matrix& m = matrices_[i];
    torch::Tensor approximation = gradient(m);
    at::mm_out(approximation, p_of(m), q_of(next_q_, m).t());
    next_error_[i].sub_(approximation);
  }
}

void PowerSgd::commit() {
  if (!pending_) return;
  std::swap(error_, next_error_);
  std::swap(q_, next_q_);
  has_q_ = true;
  pending_ = false;
}

ExchangeState PowerSgd::state() const {
  ExchangeState state;
  for (size_t i = 0; i < error_.size(); ++i) state["error." + std::to_string(i)] = error_[i];
  if (has_q_) state["q"] = q_;
  return state;
}

void PowerSgd::set_state(const ExchangeState& state) {
  torch::NoGradGuard no_grad;
  const auto load = [&](const std::string& name, torch::Tensor& into) {
    const auto found = state.find(name);
    if (found == state.end()) throw std::runtime_error("PowerSGD state lacks '" + name + "'");
    if (!found->second.sizes().equals(into.sizes()))
      throw std::runtime_error("PowerSGD state '" + name + "' has another shape (another model or powersgd_rank)");
    into.copy_(found->second);
  };
  for (size_t i = 0; i < error_.size(); ++i) load("error." + std::to_string(i), error_[i]);
  has_q_ = state.count("q") > 0;
  if (has_q_) load("q", q_);
  pending_ = false;
}

int64_t PowerSgd::compressed_elements() const {
  int64_t n = 0;
  for (const Matrix& m : matrices_) n += m.rows * m.cols;
  return n;
}

int64_t PowerSgd::raw_elements() const {
  int64_t n = 0;
  for (size_t k : raw_) n += parameters_[k].numel();
  return n;
}

}  // namespace ddp
