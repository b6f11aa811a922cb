#pragma once
// Bytes on disk that a crash must never leave half-written, and their checksum.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace ddp {

// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and
// fsyncs the directory: a reader (or a resume after a crash) sees the old file or the new
// one, never a torn one. Throws std::runtime_error naming the file.
void write_file_atomically(const std::filesystem::path& path, const std::string& bytes);

// zlib's CRC-32 of `size` bytes, continuing from `crc` (0 to start).
uint32_t crc32_of(const void* data, size_t size, uint32_t crc = 0);

}  // namespace ddp
