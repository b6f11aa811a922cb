#include "data/IdxFormat.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "common/Errors.h"

namespace ddp {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension

uint32_t big_endian_u32(const std::vector<uint8_t>& bytes, size_t offset) {
  return (uint32_t(bytes[offset]) << 24) | (uint32_t(bytes[offset + 1]) << 16) | (uint32_t(bytes[offset + 2]) << 8) |
         uint32_t(bytes[offset + 3]);
}

std::string hex(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%08x", value);
  return buffer;
}

// Checks magic and the header's dimension count, and that the payload size the header
// promises is exactly what the file holds.
IdxArray parse_header(const std::vector<uint8_t>& bytes, const std::string& source, uint32_t magic) {
  if (bytes.size() < 4) throw InputError(source + ": truncated IDX header (" + std::to_string(bytes.size()) + " bytes)");
  const uint32_t found = big_endian_u32(bytes, 0);
  if (found != magic)
    throw InputError(source + ": wrong IDX magic " + hex(found) + ", expected " + hex(magic) +
                     (magic == kImagesMagic ? " (an image file)" : " (a label file)"));
  const size_t dims = magic & 0xff;
  const size_t header = 4 + 4 * dims;
  if (bytes.size() < header)
    throw InputError(source + ": truncated IDX header (" + std::to_string(bytes.size()) + " bytes, need " +
                     std::to_string(header) + ")");
  IdxArray array;
  array.shape.resize(dims);
  array.data_offset = header;
  // Three 32-bit counts can multiply past 64 bits; 128-bit arithmetic keeps the comparison honest.
  unsigned __int128 payload = 1;
  for (size_t d = 0; d < dims; ++d) {
    array.shape[d] = big_endian_u32(bytes, 4 + 4 * d);
    payload *= array.shape[d];
  }
  const size_t actual = bytes.size() - header;
  if (payload != actual) {
    std::string dims_text;
    for (size_t d = 0; d < dims; ++d) dims_text += (d ? "x" : "") + std::to_string(array.shape[d]);
    throw InputError(source + ": header promises " + dims_text + " = " +
                     (payload > kMaxIdxBytes ? std::string("an absurd number of") : std::to_string(uint64_t(payload))) +
                     " bytes of data but the file holds " + std::to_string(actual) +
                     (payload > actual ? " (truncated?)" : " (trailing bytes)"));
  }
  return array;
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open file");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path + ": cannot read file");
  if (static_cast<uint64_t>(size) > max_bytes)
    throw InputError(path + ": larger than " + std::to_string(max_bytes >> 20) + " MiB, refusing to read");
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw InputError(path + ": read failed");
  return bytes;
}

std::vector<uint8_t> inflate_if_gzip(std::vector<uint8_t> raw, const std::string& source, size_t max_bytes) {
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
    if (raw.size() > max_bytes)
      throw InputError(source + ": larger than " + std::to_string(max_bytes >> 20) + " MiB, refusing to read");
    return raw;
  }
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) throw InputError(source + ": zlib initialisation failed");
  std::vector<uint8_t> out;
  // The trailer ends with the inflated size (mod 2^32; the last member's). Reserved up front, the
  // output never grows by copying, which holds it twice for a moment: a hint only, and never
  // more than max_bytes or what deflate's 1032:1 limit lets these bytes inflate to.
  if (raw.size() >= 18) {
    const size_t n = raw.size();
    const size_t inflated = size_t(raw[n - 4]) | size_t(raw[n - 3]) << 8 | size_t(raw[n - 2]) << 16 |
                            size_t(raw[n - 1]) << 24;
    out.reserve(std::min({inflated, max_bytes, n * 1032}));
  }
  std::vector<uint8_t> chunk(1 << 20);
  stream.next_in = raw.data();
  stream.avail_in = uInt(raw.size());
  int rc = Z_OK;
  // Concatenated gzip members are legal (gzip a b > c): inflate each in turn.
  while (true) {
    stream.next_out = chunk.data();
    stream.avail_out = uInt(chunk.size());
    rc = inflate(&stream, Z_NO_FLUSH);
    const size_t produced = chunk.size() - stream.avail_out;
    if (out.size() + produced > max_bytes) {
      inflateEnd(&stream);
      throw InputError(source + ": inflates to more than " + std::to_string(max_bytes >> 20) + " MiB, refusing");
    }
    out.insert(out.end(), chunk.begin(), chunk.begin() + long(produced));
    if (rc == Z_STREAM_END) {
      if (stream.avail_in == 0) break;
      inflateReset(&stream);
      continue;
    }
    if (rc != Z_OK) {
      const std::string why = stream.msg ? stream.msg : rc == Z_BUF_ERROR ? "unexpected end of data" : "zlib error";
      inflateEnd(&stream);
      throw InputError(source + ": corrupt or truncated gzip data (" + why + ")");
    }
    if (stream.avail_in == 0 && produced == 0) {
      inflateEnd(&stream);
      throw InputError(source + ": corrupt or truncated gzip data (unexpected end of data)");
    }
  }
  inflateEnd(&stream);
  return out;
}

IdxArray parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& source) {
  IdxArray array = parse_header(bytes, source, kImagesMagic);
  if (array.shape[1] != 28 || array.shape[2] != 28)
    throw InputError(source + ": images are " + std::to_string(array.shape[1]) + "x" +
                     std::to_string(array.shape[2]) + ", expected 28x28");
  if (array.shape[0] == 0) throw InputError(source + ": holds no images");
  return array;
}

IdxArray parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& source, int num_classes) {
  IdxArray array = parse_header(bytes, source, kLabelsMagic);
  for (size_t i = array.data_offset; i < bytes.size(); ++i) {
    if (bytes[i] >= num_classes)
      throw InputError(source + ": label " + std::to_string(bytes[i]) + " at index " +
                       std::to_string(i - array.data_offset) + " is out of range 0-" + std::to_string(num_classes - 1));
  }
  return array;
}

}  // namespace ddp
