#include "metrics/RunDirectory.h"

#include <chrono>
#include <ctime>

#include "common/Errors.h"
#include "common/Files.h"

namespace ddp {

namespace fs = std::filesystem;

bool RunDirectory::holds_results(const fs::path& path) {
  std::error_code error;
  const auto metrics_size = fs::file_size(path / "metrics.jsonl", error);
  return fs::exists(path / "summary.json") || (!error && metrics_size > 0);
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
  run.metrics_.open(path / "metrics.jsonl", std::ios::trunc);
  if (!run.metrics_) throw InputError("output.dir: cannot write " + (path / "metrics.jsonl").string());
  fs::remove(path / "summary.json");
  return run;
}

RunDirectory RunDirectory::reopen(const std::string& requested, int64_t completed_epochs) {
  const fs::path path = requested;
  std::string kept;
  {
    std::ifstream in(path / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      try {
        if (nlohmann::json::parse(line).at("epoch").get<int64_t>() <= completed_epochs) kept += line + "\n";
      } catch (const nlohmann::json::exception&) {
        // A line torn by the crash that made this resume necessary: drop it.
      }
    }
  }
  write_file_atomically(path / "metrics.jsonl", kept);
  fs::remove(path / "summary.json");
  RunDirectory run(path);
  run.metrics_.open(path / "metrics.jsonl", std::ios::app);
  if (!run.metrics_) throw InputError("output.dir: cannot write " + (path / "metrics.jsonl").string());
  return run;
}

void RunDirectory::write_text(const std::string& name, const std::string& text) const {
  write_file_atomically(path_ / name, text);
}

void RunDirectory::append_metrics(const nlohmann::json& record) {
  metrics_ << record.dump() << '\n';
  metrics_.flush();
}

void RunDirectory::write_summary(const nlohmann::json& summary) const {
  write_file_atomically(path_ / "summary.json", summary.dump(2) + "\n");
}

}  // namespace ddp
