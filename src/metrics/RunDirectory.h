#pragma once
// Where one run's results go: config.yaml, metrics.jsonl (a line per epoch), steps.jsonl (a
// line every metrics.every_steps steps, when on), evals.jsonl (a line per evaluation of the
// test set, when metrics.eval_every_steps is on) and summary.json. Lines reach the file as they
// are written, so a killed job keeps what it measured. A write that fails (a full disk) throws
// std::system_error naming the file and leaves no half line or temporary file.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "common/Files.h"

namespace ddp {

class RunDirectory {
 public:
  // `requested` empty: a new runs/<timestamp>[-N]/. An existing directory is reused as it
  // is: whether it may be (holds_results) is the caller's question, asked before anything
  // is written.
  static RunDirectory create(const std::string& requested);
  // A summary, or at least one epoch's or step's metrics: what a new run there would destroy.
  static bool holds_results(const std::filesystem::path& path);
  // An existing run directory continued from a checkpoint after `completed_steps` steps:
  // metrics.jsonl keeps the lines of the first `completed_epochs` epochs and steps.jsonl
  // those of the first `completed_steps` steps (later ones came after the checkpoint and
  // will be measured again); the summary goes until the run completes.
  static RunDirectory reopen(const std::string& path, int64_t completed_epochs, int64_t completed_steps);
  // Removes the temporary files of this directory's own files that a write interrupted by a
  // crash left behind (config.yaml.tmp, ...): on a full disk they hold the space the next run
  // needs. Returns those it removed.
  static std::vector<std::filesystem::path> remove_temporaries(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  void write_text(const std::string& name, const std::string& text) const;
  void append_metrics(const nlohmann::json& record);
  void append_step(const nlohmann::json& record);  // steps.jsonl, created by the first line
  void append_eval(const nlohmann::json& record);  // evals.jsonl, likewise
  void write_summary(const nlohmann::json& summary) const;

 private:
  explicit RunDirectory(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
  LineFile metrics_;
  LineFile steps_;
  LineFile evals_;
};

}  // namespace ddp
