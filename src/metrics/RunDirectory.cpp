#include "metrics/RunDirectory.h"

#include <chrono>
#include <ctime>

#include "common/Errors.h"

namespace ddp {

namespace fs = std::filesystem;

void write_file_atomically(const fs::path& path, const std::string& text) {
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(temporary.string() + ": cannot write");
    out << text;
    if (!out.flush()) throw std::runtime_error(temporary.string() + ": write failed");
  }
  fs::rename(temporary, path);
}

RunDirectory RunDirectory::create(const std::string& requested, bool overwrite) {
  fs::path path;
  if (requested.empty()) {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
    path = fs::path("runs") / stamp;
    for (int n = 2; fs::exists(path); ++n) path = fs::path("runs") / (std::string(stamp) + "-" + std::to_string(n));
  } else {
    path = requested;
    const bool has_results = fs::exists(path / "metrics.jsonl") || fs::exists(path / "summary.json");
    if (has_results && !overwrite)
      throw InputError("output.dir: " + path.string() +
                       " already holds a run's results; pass --overwrite or choose another output.dir");
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
