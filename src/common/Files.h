#pragma once
// Bytes on disk that a crash or a full disk must never leave half-written, and their checksum.
// A write the system refuses throws std::system_error whose message names the file and whose
// code is the system's reason (errno: ENOSPC for a full disk); message_of (common/Errors.h)
// says what to do about it.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace ddp {

// Writes `bytes` to `temporary_path_of(path)`, fsyncs it, renames it over `path` and fsyncs
// the directory: a reader (or a resume after a crash) sees the old file or the new one, never
// a torn one. A write that fails removes the temporary file again (on a full disk it would
// hold the space the next attempt needs) and throws std::system_error naming `path`.
void write_file_atomically(const std::filesystem::path& path, const std::string& bytes);

// Where write_file_atomically puts the new bytes until they are complete: `path` + ".tmp".
std::filesystem::path temporary_path_of(const std::filesystem::path& path);

// A JSON-lines file that grows a whole line at a time. Each append is one write(2), with no
// buffer in this process (what a killed job has appended is in the file); an append the system
// refuses is cut off again, so the file never ends in half a line, and throws
// std::system_error naming the file.
class LineFile {
 public:
  enum class Mode { Truncate, Append };
  LineFile() = default;
  LineFile(std::filesystem::path path, Mode mode);  // creates the file; throws as append does
  LineFile(LineFile&& other) noexcept;
  LineFile& operator=(LineFile&& other) noexcept;
  LineFile(const LineFile&) = delete;
  LineFile& operator=(const LineFile&) = delete;
  ~LineFile();

  bool is_open() const { return fd_ >= 0; }
  void append(const std::string& line);  // `line` and a newline

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

// zlib's CRC-32 of `size` bytes, continuing from `crc` (0 to start).
uint32_t crc32_of(const void* data, size_t size, uint32_t crc = 0);

}  // namespace ddp
