#pragma once
// The gradient noise scale of McCandlish et al. 2018 (arXiv 1812.06162, appendix A.1),
// measured for free by data parallelism: every rank holds a small-batch gradient (its
// micro-batch, B_small) and, after the all-reduce, the large-batch gradient (B_big).
//   |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
//   S     ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)          (S = tr Sigma)
//   B_simple = S / |G|^2, from exponential moving averages of |G|^2 and S taken
// separately: single estimates can be negative; only the smoothed ratio means anything.
#include <cstdint>
#include <optional>

namespace ddp {

class GradientNoiseScale {
 public:
  // `decay` weights the history in each moving average (0.99: about the last 100 samples).
  GradientNoiseScale(double b_small, double b_big, double decay = 0.99);

  // One measurement: mean over ranks of |G_small|^2, and |G_big|^2.
  void add(double small_squared_norm, double big_squared_norm);

  // Bias-corrected moving averages (as Adam's), so early estimates are not pulled to 0.
  double gradient_squared_norm() const;  // |G|^2
  double trace_sigma() const;            // S
  // S / |G|^2; empty until a sample arrived or while the smoothed |G|^2 is not positive.
  std::optional<double> b_simple() const;

  // The moving averages, for checkpoints.
  struct State {
    double g2_ema, s_ema, weight;
    int64_t samples;
  };
  State state() const { return {g2_ema_, s_ema_, weight_, samples_}; }
  void restore(const State& state);

 private:
  double b_small_, b_big_, decay_;
  double g2_ema_ = 0, s_ema_ = 0, weight_ = 0;
  int64_t samples_ = 0;
};

}  // namespace ddp
