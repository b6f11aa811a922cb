#include "metrics/RunDirectory.h"

#include <chrono>
#include <ctime>

#include "common/Errors.h"
#include "common/Files.h"

namespace ddp {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMetrics = "metrics.jsonl";
constexpr const char* kSteps = "steps.jsonl";
constexpr const char* kEvals = "evals.jsonl";

bool non_empty(const fs::path& file) {
  std::error_code error;
  const auto size = fs::file_size(file, error);
  return !error && size > 0;
}

// Rewrites the JSON-lines `file` with only the lines whose `key` is at most `last`.
void keep_lines_up_to(const fs::path& file, const char* key, int64_t last) {
  std::string kept;
  {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      try {
        if (nlohmann::json::parse(line).at(key).get<int64_t>() <= last) kept += line + "\n";
      } catch (const nlohmann::json::exception&) {
        // A line torn by the crash that made this resume necessary: drop it.
      }
    }
  }
  write_file_atomically(file, kept);
}

}  // namespace

bool RunDirectory::holds_results(const fs::path& path) {
  return fs::exists(path / "summary.json") || non_empty(path / kMetrics) || non_empty(path / kSteps) ||
         non_empty(path / kEvals);
}

RunDirectory RunDirectory::create(const std::string& requested) {
  fs::path path;
  if (requested.empty()) {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
    path = fs::path("runs") / stamp;
    for (int n = 2; fs::exists(path); ++n) path = fs::path("runs") / (std::string(stamp) + "-" + std::to_string(n));
  } else {
    path = requested;
  }
  std::error_code error;
  fs::create_directories(path, error);
  if (error || !fs::is_directory(path))
    throw InputError("output.dir: cannot create " + path.string() + ": " + error.message());
  RunDirectory run(path);
  run.metrics_.open(path / kMetrics, std::ios::trunc);
  if (!run.metrics_) throw InputError("output.dir: cannot write " + (path / kMetrics).string());
  fs::remove(path / "summary.json");
  fs::remove(path / kSteps);  // an earlier run's (--overwrite); this run's starts with its first line
  fs::remove(path / kEvals);
  return run;
}

RunDirectory RunDirectory::reopen(const std::string& requested, int64_t completed_epochs, int64_t completed_steps) {
  const fs::path path = requested;
  keep_lines_up_to(path / kMetrics, "epoch", completed_epochs);
  if (fs::exists(path / kSteps)) keep_lines_up_to(path / kSteps, "step", completed_steps);
  if (fs::exists(path / kEvals)) keep_lines_up_to(path / kEvals, "step", completed_steps);
  fs::remove(path / "summary.json");
  RunDirectory run(path);
  run.metrics_.open(path / kMetrics, std::ios::app);
  if (!run.metrics_) throw InputError("output.dir: cannot write " + (path / kMetrics).string());
  return run;
}

void RunDirectory::write_text(const std::string& name, const std::string& text) const {
  write_file_atomically(path_ / name, text);
}

void RunDirectory::append_metrics(const nlohmann::json& record) {
  metrics_ << record.dump() << '\n';
  metrics_.flush();
}

void RunDirectory::append_step(const nlohmann::json& record) {
  if (!steps_.is_open()) {
    steps_.open(path_ / kSteps, std::ios::app);
    if (!steps_) throw std::runtime_error("cannot write " + (path_ / kSteps).string());
  }
  steps_ << record.dump() << '\n';
  steps_.flush();
}

void RunDirectory::append_eval(const nlohmann::json& record) {
  if (!evals_.is_open()) {
    evals_.open(path_ / kEvals, std::ios::app);
    if (!evals_) throw std::runtime_error("cannot write " + (path_ / kEvals).string());
  }
  evals_ << record.dump() << '\n';
  evals_.flush();
}

void RunDirectory::write_summary(const nlohmann::json& summary) const {
  write_file_atomically(path_ / "summary.json", summary.dump(2) + "\n");
}

}  // namespace ddp
