#include "metrics/RunDirectory.h"

#include <chrono>
#include <ctime>
#include <fstream>
#include <system_error>

#include "common/Errors.h"
#include "common/Files.h"

namespace ddp {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMetrics = "metrics.jsonl";
constexpr const char* kSteps = "steps.jsonl";
constexpr const char* kEvals = "evals.jsonl";
constexpr const char* kSummary = "summary.json";
// Every file a run writes here (config.yaml through write_text).
constexpr const char* kFiles[] = {"config.yaml", kMetrics, kSteps, kEvals, kSummary};

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

// metrics.jsonl, opened for this run. A directory that refuses it is output.dir's fault (exit
// 2), unless the disk is full: that is no mistake in the config.
LineFile open_metrics(const fs::path& dir, LineFile::Mode mode) {
  try {
    return LineFile(dir / kMetrics, mode);
  } catch (const std::system_error& e) {
    if (is_disk_full(e)) throw;
    throw InputError(std::string("output.dir: ") + e.what());
  }
}

}  // namespace

bool RunDirectory::holds_results(const fs::path& path) {
  return fs::exists(path / kSummary) || non_empty(path / kMetrics) || non_empty(path / kSteps) ||
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
  run.metrics_ = open_metrics(path, LineFile::Mode::Truncate);
  fs::remove(path / kSummary);
  fs::remove(path / kSteps);  // an earlier run's (--overwrite); this run's starts with its first line
  fs::remove(path / kEvals);
  return run;
}

RunDirectory RunDirectory::reopen(const std::string& requested, int64_t completed_epochs, int64_t completed_steps) {
  const fs::path path = requested;
  keep_lines_up_to(path / kMetrics, "epoch", completed_epochs);
  if (fs::exists(path / kSteps)) keep_lines_up_to(path / kSteps, "step", completed_steps);
  if (fs::exists(path / kEvals)) keep_lines_up_to(path / kEvals, "step", completed_steps);
  fs::remove(path / kSummary);
  RunDirectory run(path);
  run.metrics_ = open_metrics(path, LineFile::Mode::Append);
  return run;
}

std::vector<fs::path> RunDirectory::remove_temporaries(const fs::path& path) {
  std::vector<fs::path> removed;
  for (const char* name : kFiles) {
    const fs::path temporary = temporary_path_of(path / name);
    std::error_code error;
    if (fs::remove(temporary, error)) removed.push_back(temporary);
  }
  return removed;
}

void RunDirectory::write_text(const std::string& name, const std::string& text) const {
  write_file_atomically(path_ / name, text);
}

void RunDirectory::append_metrics(const nlohmann::json& record) { metrics_.append(record.dump()); }

void RunDirectory::append_step(const nlohmann::json& record) {
  if (!steps_.is_open()) steps_ = LineFile(path_ / kSteps, LineFile::Mode::Append);
  steps_.append(record.dump());
}

void RunDirectory::append_eval(const nlohmann::json& record) {
  if (!evals_.is_open()) evals_ = LineFile(path_ / kEvals, LineFile::Mode::Append);
  evals_.append(record.dump());
}

void RunDirectory::write_summary(const nlohmann::json& summary) const {
  write_file_atomically(path_ / kSummary, summary.dump(2) + "\n");
}

}  // namespace ddp
