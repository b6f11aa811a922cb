#pragma once
// Training state on disk. One file per checkpoint:
//   "DDPCKPT1" | u64 metadata length | metadata (JSON) | blobs | u32 CRC-32 of all before
// The metadata says where each blob lies; the CRC makes a torn or corrupted file
// detectable, so resume can skip it for an older one. Files are written to a temporary
// name, fsynced and renamed, so a crash mid-write never leaves a half file under the
// real name; a write that fails (a full disk) removes its temporary file and throws
// std::system_error naming the checkpoint and the system's reason.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ddp {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrainingCheckpoint {
  nlohmann::json meta;                        // step, epoch, world size, config, ...
  std::map<std::string, std::string> blobs;   // name -> bytes (model, optimizer, RNG state)
};

// Serialise / parse one checkpoint; parse throws CheckpointError naming `source`.
std::string encode_checkpoint(const TrainingCheckpoint& checkpoint);
TrainingCheckpoint decode_checkpoint(const std::string& bytes, const std::string& source);

// Atomic write (temporary file, fsync, rename, fsync of the directory).
void write_checkpoint(const std::filesystem::path& path, const TrainingCheckpoint& checkpoint);
TrainingCheckpoint read_checkpoint(const std::filesystem::path& path);

// A directory of checkpoints named ckpt-<step>.ddpckpt, keeping the newest `keep`.
class CheckpointStore {
 public:
  CheckpointStore(std::filesystem::path dir, int keep);
  // Writes the checkpoint for `step` and removes the oldest beyond `keep`. Returns its path.
  std::filesystem::path save(int64_t step, const TrainingCheckpoint& checkpoint);
  // Throws CheckpointError when an intact checkpoint cannot be used (its metadata does not read
  // back); `source` names it.
  using UsableCheck = std::function<void(const TrainingCheckpoint& checkpoint, const std::string& source)>;
  // The newest checkpoint that reads back intact and passes `usable`; each one that does not is
  // reported through `warn`, saying why, and skipped for the next older one.
  std::optional<std::pair<std::filesystem::path, TrainingCheckpoint>> newest_valid(
      const std::function<void(const std::string&)>& warn, const UsableCheck& usable = {}) const;
  std::vector<std::filesystem::path> list() const;  // oldest first
  // Deletes every checkpoint of a step after `step` (-1: all of them).
  void remove_after(int64_t step) const;
  // Deletes the temporary files (ckpt-<step>.ddpckpt.tmp, never a checkpoint) of writes a
  // crash interrupted, and nothing else: checkpoint.dir may hold files of the user's. Returns
  // those it deleted.
  std::vector<std::filesystem::path> remove_temporaries() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  int keep_;
};

}  // namespace ddp
