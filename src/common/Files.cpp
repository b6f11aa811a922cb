#include "common/Files.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

namespace ddp {
namespace {

namespace fs = std::filesystem;

void fsync_path(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(temporary.string() + ": cannot write");
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out.flush()) throw std::runtime_error(temporary.string() + ": write failed");
  }
  fsync_path(temporary, O_RDONLY);
  fs::rename(temporary, path);
  fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path(), O_RDONLY | O_DIRECTORY);
}

uint32_t crc32_of(const void* data, size_t size, uint32_t crc) {
  auto bytes = static_cast<const Bytef*>(data);
  uLong value = crc;
  // zlib's length is uInt: feed large buffers in pieces.
  while (size > 0) {
    const uInt chunk = uInt(std::min<size_t>(size, 1u << 30));
    value = crc32(value, bytes, chunk);
    bytes += chunk;
    size -= chunk;
  }
  return uint32_t(value);
}

}  // namespace ddp
