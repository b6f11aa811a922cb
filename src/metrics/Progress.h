#pragma once
// Rank 0's view of training: a live bar redrawn in place on a terminal, one plain
// line per epoch otherwise (logs, Slurm output files).
#include <chrono>
#include <cstdint>
#include <string>

namespace ddp {

struct EpochReport {
  int64_t epoch = 0;
  int64_t epochs = 0;  // 0: not known in advance (AdaScale ends on its progress, not on an epoch count)
  double lr = 0;
  double train_loss = 0;
  double test_loss = 0;
  double test_accuracy = 0;
  double samples_per_second = 0;
  double epoch_seconds = 0;
  std::string note;  // appended to the line
};

class Progress {
 public:
  Progress(bool enabled, int64_t steps_per_epoch);
  // Cheap to call every step: redraws at most ten times a second, and only on a terminal.
  void step(int64_t epoch, int64_t step_in_epoch, double lr);
  void epoch_done(const EpochReport& report);
  void message(const std::string& line);

 private:
  bool enabled_;
  bool live_;
  int64_t steps_per_epoch_;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace ddp
