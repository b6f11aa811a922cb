#include "metrics/NoiseScale.h"

#include <stdexcept>

namespace ddp {

GradientNoiseScale::GradientNoiseScale(double b_small, double b_big, double decay)
    : b_small_(b_small), b_big_(b_big), decay_(decay) {
  if (!(b_big > b_small))
    throw std::invalid_argument("GradientNoiseScale: needs B_big > B_small (more than one rank or virtual rank)");
}

void GradientNoiseScale::add(double small_sq, double big_sq) {
  const double g2 = (b_big_ * big_sq - b_small_ * small_sq) / (b_big_ - b_small_);
  const double s = (small_sq - big_sq) / (1.0 / b_small_ - 1.0 / b_big_);
  g2_ema_ = decay_ * g2_ema_ + (1 - decay_) * g2;
  s_ema_ = decay_ * s_ema_ + (1 - decay_) * s;
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
