#include "checkpoint/Checkpoint.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/Files.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;
constexpr char kMagic[8] = {'D', 'D', 'P', 'C', 'K', 'P', 'T', '1'};
constexpr const char* kSuffix = ".ddpckpt";

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char(v >> (8 * i)));
}
uint64_t get_u64(const std::string& in, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(uint8_t(in[at + i])) << (8 * i);
  return v;
}

bool ends_with(const std::string& text, const std::string& end) {
  return text.size() >= end.size() && text.compare(text.size() - end.size(), end.size(), end) == 0;
}

int64_t step_of(const fs::path& path) {
  const std::string name = path.filename().string();  // ckpt-<step>.ddpckpt
  try {
    return std::stoll(name.substr(5, name.size() - 5 - std::strlen(kSuffix)));
  } catch (...) {
    return -1;
  }
}

}  // namespace

std::string encode_checkpoint(const TrainingCheckpoint& checkpoint) {
  nlohmann::json meta = checkpoint.meta;
  nlohmann::json table = nlohmann::json::array();
  uint64_t offset = 0;
  for (const auto& [name, bytes] : checkpoint.blobs) {
    table.push_back({{"name", name}, {"offset", offset}, {"size", bytes.size()}});
    offset += bytes.size();
  }
  meta["blobs"] = table;
  const std::string meta_text = meta.dump();
  std::string out(kMagic, sizeof(kMagic));
  put_u64(out, meta_text.size());
  out += meta_text;
  for (const auto& entry : checkpoint.blobs) out += entry.second;
  const uint32_t crc = crc32_of(out.data(), out.size());
  for (int i = 0; i < 4; ++i) out.push_back(char(crc >> (8 * i)));
  return out;
}

TrainingCheckpoint decode_checkpoint(const std::string& bytes, const std::string& source) {
  auto fail = [&](const std::string& what) { throw CheckpointError(source + ": " + what); };
  if (bytes.size() < sizeof(kMagic) + 8 + 4) fail("too short to be a checkpoint");
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) fail("not a ddp-trainer checkpoint (bad magic)");
  const size_t body = bytes.size() - 4;
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= uint32_t(uint8_t(bytes[body + i])) << (8 * i);
  if (crc32_of(bytes.data(), body) != stored) fail("checksum mismatch (truncated or corrupted)");
  const uint64_t meta_size = get_u64(bytes, sizeof(kMagic));
  const size_t meta_at = sizeof(kMagic) + 8;
  if (meta_size > body - meta_at) fail("metadata length exceeds the file");
  TrainingCheckpoint checkpoint;
  try {
    checkpoint.meta = nlohmann::json::parse(bytes.substr(meta_at, meta_size));
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("unreadable metadata: ") + e.what());
  }
  const size_t blobs_at = meta_at + meta_size;
  try {
    for (const auto& entry : checkpoint.meta.at("blobs")) {
      const uint64_t offset = entry.at("offset"), size = entry.at("size");
      if (offset > body - blobs_at || size > body - blobs_at - offset) fail("blob outside the file");
      checkpoint.blobs[entry.at("name").get<std::string>()] = bytes.substr(blobs_at + offset, size);
    }
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("bad blob table: ") + e.what());
  }
  checkpoint.meta.erase("blobs");
  return checkpoint;
}

void write_checkpoint(const fs::path& path, const TrainingCheckpoint& checkpoint) {
  write_file_atomically(path, encode_checkpoint(checkpoint));
}

TrainingCheckpoint read_checkpoint(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path.string() + ": cannot open");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return decode_checkpoint(bytes.str(), path.string());
}

CheckpointStore::CheckpointStore(fs::path dir, int keep) : dir_(std::move(dir)), keep_(std::max(1, keep)) {}

std::vector<fs::path> CheckpointStore::list() const {
  std::vector<fs::path> paths;
  std::error_code error;
  if (!fs::is_directory(dir_, error)) return paths;
  for (const auto& entry : fs::directory_iterator(dir_, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("ckpt-", 0) == 0 && name.size() > std::strlen(kSuffix) && ends_with(name, kSuffix) &&
        step_of(entry.path()) >= 0)
      paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end(), [](const fs::path& a, const fs::path& b) { return step_of(a) < step_of(b); });
  return paths;
}

void CheckpointStore::remove_after(int64_t step) const {
  for (const auto& path : list())
    if (step_of(path) > step) fs::remove(path);
}

std::vector<fs::path> CheckpointStore::remove_temporaries() const {
  std::vector<fs::path> found, removed;
  std::error_code error;
  if (!fs::is_directory(dir_, error)) return removed;
  const std::string temporary_suffix = temporary_path_of(kSuffix).string();  // ".ddpckpt.tmp"
  for (const auto& entry : fs::directory_iterator(dir_, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("ckpt-", 0) == 0 && ends_with(name, temporary_suffix)) found.push_back(entry.path());
  }
  for (const auto& path : found)
    if (fs::remove(path, error)) removed.push_back(path);
  return removed;
}

fs::path CheckpointStore::save(int64_t step, const TrainingCheckpoint& checkpoint) {
  fs::create_directories(dir_);
  char name[64];
  std::snprintf(name, sizeof(name), "ckpt-%010lld%s", static_cast<long long>(step), kSuffix);
  const fs::path path = dir_ / name;
  write_checkpoint(path, checkpoint);
  auto paths = list();
  for (size_t i = 0; i + size_t(keep_) < paths.size(); ++i) fs::remove(paths[i]);
  return path;
}

std::optional<std::pair<fs::path, TrainingCheckpoint>> CheckpointStore::newest_valid(
    const std::function<void(const std::string&)>& warn, const UsableCheck& usable) const {
  auto paths = list();
  for (auto it = paths.rbegin(); it != paths.rend(); ++it) {
    TrainingCheckpoint checkpoint;
    try {
      checkpoint = read_checkpoint(*it);
    } catch (const CheckpointError& e) {
      warn(std::string("skipping corrupt checkpoint: ") + e.what());
      continue;
    }
    try {
      if (usable) usable(checkpoint, it->string());
      return std::make_pair(*it, std::move(checkpoint));
    } catch (const CheckpointError& e) {
      warn(std::string("skipping unusable checkpoint (intact, but it cannot be resumed from): ") + e.what());
    }
  }
  return std::nullopt;
}

}  // namespace ddp
