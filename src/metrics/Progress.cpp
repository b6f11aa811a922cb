#include "metrics/Progress.h"

#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>

namespace ddp {

Progress::Progress(bool enabled, int64_t steps_per_epoch)
    : enabled_(enabled), live_(enabled && isatty(fileno(stderr))), steps_per_epoch_(steps_per_epoch) {}

void Progress::step(int64_t epoch, int64_t step_in_epoch, double lr) {
  if (!live_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const int filled = int(kWidth * (step_in_epoch + 1) / steps_per_epoch_);
  fmt::print(stderr, "\r\033[2Kepoch {} [{}{}] {}/{} lr {:.5g}", epoch + 1, std::string(filled, '#'),
             std::string(kWidth - filled, '.'), step_in_epoch + 1, steps_per_epoch_, lr);
  std::fflush(stderr);
}

void Progress::epoch_done(const EpochReport& r) {
  if (!enabled_) return;
  const std::string epochs = r.epochs > 0 ? fmt::format("/{}", r.epochs) : "";
  const std::string line =
      fmt::format("epoch {:>3}{}  lr {:.5g}  train_loss {:.4f}  test_loss {:.4f}  test_acc {:.4f}  {:.0f} samples/s  "
                  "{:.2f}s{}",
                  r.epoch + 1, epochs, r.lr, r.train_loss, r.test_loss, r.test_accuracy, r.samples_per_second,
                  r.epoch_seconds, r.note);
  fmt::print(stderr, "{}{}\n", live_ ? "\r\033[2K" : "", line);
  std::fflush(stderr);
}

void Progress::message(const std::string& line) {
  if (!enabled_) return;
  fmt::print(stderr, "{}{}\n", live_ ? "\r\033[2K" : "", line);
  std::fflush(stderr);
}

}  // namespace ddp
