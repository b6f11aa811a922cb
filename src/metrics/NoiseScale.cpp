#include "metrics/NoiseScale.h"

#include <cmath>
#include <stdexcept>

namespace ddp {

GradientNoiseScale::GradientNoiseScale(double b_small, double b_big, double decay)
    : b_small_(b_small), b_big_(b_big), decay_(decay) {
  if (!(b_big > b_small))
    throw std::invalid_argument("GradientNoiseScale: needs B_big > B_small (more than one rank or virtual rank)");
}

// AdaptDL (gradient_noise_scale.py): theta = smoothing ** scale, scale = global batch / base batch, once a step.
double GradientNoiseScale::decay_per_measurement(double smoothing, int64_t global_batch, int64_t base_batch,
                                                 int64_t every) {
  return std::pow(smoothing, double(every) * double(global_batch) / double(base_batch));
}

GradientNoiseScale::Estimate GradientNoiseScale::estimate(double small_sq, double big_sq) const {
  return {(b_big_ * big_sq - b_small_ * small_sq) / (b_big_ - b_small_),
          (small_sq - big_sq) / (1.0 / b_small_ - 1.0 / b_big_)};
}

void GradientNoiseScale::add(double small_sq, double big_sq) {
  const Estimate one = estimate(small_sq, big_sq);
  g2_ema_ = decay_ * g2_ema_ + (1 - decay_) * one.grad_squared_norm;
  s_ema_ = decay_ * s_ema_ + (1 - decay_) * one.trace_sigma;
  weight_ = decay_ * weight_ + (1 - decay_);
  ++samples_;
}

void GradientNoiseScale::restore(const State& state) {
  g2_ema_ = state.g2_ema;
  s_ema_ = state.s_ema;
  weight_ = state.weight;
  samples_ = state.samples;
}

double GradientNoiseScale::gradient_squared_norm() const { return weight_ > 0 ? g2_ema_ / weight_ : 0.0; }
double GradientNoiseScale::trace_sigma() const { return weight_ > 0 ? s_ema_ / weight_ : 0.0; }

std::optional<double> GradientNoiseScale::b_simple() const {
  if (samples_ == 0 || gradient_squared_norm() <= 0) return std::nullopt;
  return trace_sigma() / gradient_squared_norm();
}

}  // namespace ddp
