#pragma once
// The gradient noise scale of McCandlish et al. 2018 (arXiv 1812.06162, appendix A.1),
// measured for free by data parallelism: every rank holds a small-batch gradient (its
// micro-batch, B_small) and, after the all-reduce, the large-batch gradient (B_big).
//   |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
//   S     ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)          (S = tr Sigma)
//   B_simple = S / |G|^2, from exponential moving averages of |G|^2 and S taken
// separately: single estimates can be negative; only the smoothed ratio means anything.
//
// The averages' window is a fixed amount of data, whatever the batch, as in AdaptDL: its
// averages decay by theta = smoothing^S per step of S base batches (adaptdl/torch/
// gradient_noise_scale.py, smoothing 0.999). A measurement every k steps of a global batch B
// decays them by smoothing^(k B / base batch) (decay_per_measurement), so that they remember
// about base batch / (1 - smoothing) samples (64,000 at batch 64 and 0.999) at every batch; a
// window fixed in measurements would span a sweep's batches over very different stretches of training.
#include <cstdint>
#include <optional>

namespace ddp {

class GradientNoiseScale {
 public:
  // The decay per measurement for `smoothing` per `base_batch` samples, one measurement every
  // `every` steps of `global_batch` samples: smoothing^(every x global_batch / base_batch).
  static double decay_per_measurement(double smoothing, int64_t global_batch, int64_t base_batch, int64_t every);

  // `decay` weights the history in each moving average at every measurement.
  GradientNoiseScale(double b_small, double b_big, double decay = 0.999);

  // One measurement's own unbiased estimates of |G|^2 and S (either may be negative).
  struct Estimate {
    double grad_squared_norm, trace_sigma;
  };
  Estimate estimate(double small_squared_norm, double big_squared_norm) const;

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
