#pragma once
// Where one run's results go: config.yaml, metrics.jsonl (a line per epoch, flushed as
// it is written so a killed job keeps what it measured) and summary.json.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace ddp {

class RunDirectory {
 public:
  // `requested` empty: a new runs/<timestamp>[-N]/. An existing directory is reused as it
  // is: whether it may be (holds_results) is the caller's question, asked before anything
  // is written.
  static RunDirectory create(const std::string& requested);
  // A summary, or at least one epoch's metrics: what a new run there would destroy.
  static bool holds_results(const std::filesystem::path& path);
  // An existing run directory continued from a checkpoint: metrics.jsonl keeps the
  // lines of the first `completed_epochs` epochs (later ones came after the checkpoint
  // and will be measured again); the summary goes until the run completes.
  static RunDirectory reopen(const std::string& path, int64_t completed_epochs);

  const std::filesystem::path& path() const { return path_; }
  void write_text(const std::string& name, const std::string& text) const;
  void append_metrics(const nlohmann::json& record);
  void write_summary(const nlohmann::json& summary) const;

 private:
  explicit RunDirectory(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
  std::ofstream metrics_;
};

}  // namespace ddp
