#include "common/Files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

namespace ddp {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void throw_system_error(const fs::path& path, const std::string& what, int error) {
  throw std::system_error(error, std::generic_category(), path.string() + ": " + what);
}

// write(2) may take fewer bytes than asked (a signal, the last free blocks of a disk): the rest
// goes in further calls, the last of which says why it stopped. Returns 0 or that errno.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return errno;
    data += written;
    size -= size_t(written);
  }
  return 0;
}

// Makes a rename durable; a filesystem that cannot sync a directory has nothing to lose by it.
void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// `bytes` into a new file at `path`, synced and closed: 0, or the errno of the first step that failed.
int write_synced_file(const fs::path& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return errno;
  int error = write_all(fd, bytes.data(), bytes.size());
  // A network filesystem may learn that it is full only when the data reaches it.
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  return error;
}

}  // namespace

fs::path temporary_path_of(const fs::path& path) { return path.string() + ".tmp"; }

void write_file_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path temporary = temporary_path_of(path);
  if (const int error = write_synced_file(temporary, bytes)) {
    ::unlink(temporary.c_str());
    throw_system_error(path, "cannot write", error);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw_system_error(path, "cannot rename " + temporary.filename().string() + " to it", error);
  }
  fsync_directory(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

LineFile::LineFile(fs::path path, Mode mode) : path_(std::move(path)) {
  const int truncate = mode == Mode::Truncate ? O_TRUNC : 0;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | truncate, 0666);
  if (fd_ < 0) throw_system_error(path_, "cannot write", errno);
}

LineFile::LineFile(LineFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

LineFile& LineFile::operator=(LineFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

LineFile::~LineFile() {
  if (fd_ >= 0) ::close(fd_);
}

void LineFile::append(const std::string& line) {
  const std::string bytes = line + '\n';
  struct stat before {};
  if (::fstat(fd_, &before) != 0) throw_system_error(path_, "cannot append a line", errno);
  if (const int error = write_all(fd_, bytes.data(), bytes.size())) {
    // Part of the line may be in before the disk filled: cut it off again. Should that fail
    // too, the torn line stays, and a resume drops it (RunDirectory::reopen).
    const int cut = ::ftruncate(fd_, before.st_size);
    (void)cut;
    throw_system_error(path_, "cannot append a line", error);
  }
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
